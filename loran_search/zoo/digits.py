"""scikit-learn's digits, a small CNN and a small ViT for them, and supervised pretraining.

Data: ``sklearn/datasets/data/digits.csv.gz`` (the file ``sklearn.datasets.load_digits``
reads): 1,797 rows of 64 pixel values in ``0 … 16`` and the digit. :func:`read_digits` returns
the images scaled to ``[0, 1]`` (``x / 16``) as ``(n, 1, 8, 8)`` float32 and the labels; row
``i`` of the file is example ``i`` everywhere (its stable id is ``digits/<i>``).

Networks (the module names are what ``adapter.target_modules`` names):

* :class:`DigitsCNN`: ``conv1`` (1 → 16, 3 × 3, pad 1) → ReLU → ``conv2`` (16 → 32, 3 × 3,
  pad 1) → ReLU → 2 × 2 max-pool → ``fc1`` (512 → 64) → ReLU → ``head`` (64 → 10).
* :class:`DigitsViT`: the image cut into 16 patches of 2 × 2 pixels, ``patch`` (4 → 32) plus a
  learned position embedding and a class token, 2 pre-norm blocks (``attn.query``/``key``/
  ``value``/``out``, 4 heads; ``mlp.fc1`` 32 → 64, GELU, ``mlp.fc2``), a final LayerNorm and
  ``head`` (32 → 10) on the class token.

Pretraining (:func:`pretrain`): AdamW (``lr``, weight decay 1e-4) on the cross-entropy of the
10-way logits, seeded mini-batches (``torch.Generator`` seeded with ``seed``), one torch thread
during the build so that the same seed gives the same weights bit for bit.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

N_CLASSES = 10


def read_digits(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 1, 8, 8) float32 in [0, 1], labels (n,) int64)`` from ``digits.csv.gz``."""
    with gzip.open(path, "rt", encoding="ascii") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    images = (table[:, :64] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return images, table[:, 64].astype(np.int64)


class DigitsCNN(nn.Module):
    """A two-convolution CNN for 8 × 8 digits (layout in the module docstring)."""

    def __init__(self, channels: Sequence[int] = (16, 32), hidden: int = 64) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)
        self.head = nn.Linear(hidden, N_CLASSES)

    def forward(self, pixel_values: Tensor) -> Tensor:
        """Logits ``(B, 10)`` of images ``(B, 1, 8, 8)``."""
        h = torch.relu(self.conv1(pixel_values))  # (B, c1, 8, 8)
        h = torch.relu(self.conv2(h))  # (B, c2, 8, 8)
        h = nn.functional.max_pool2d(h, 2)  # (B, c2, 4, 4)
        h = torch.relu(self.fc1(h.flatten(1)))  # (B, hidden)
        return self.head(h)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        split = (b, t, self.heads, d // self.heads)
        q = self.query(x).view(split).transpose(1, 2)  # (B, h, T, d/h)
        k = self.key(x).view(split).transpose(1, 2)
        v = self.value(x).view(split).transpose(1, 2)
        y = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, h, T, d/h)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DigitsViT(nn.Module):
    """A two-block vision transformer on 2 × 2 patches of 8 × 8 digits (module docstring)."""

    def __init__(self, dim: int = 32, depth: int = 2, heads: int = 4, hidden: int = 64) -> None:
        super().__init__()
        self.patch = nn.Linear(4, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, N_CLASSES)

    def forward(self, pixel_values: Tensor) -> Tensor:
        """Logits ``(B, 10)`` of images ``(B, 1, 8, 8)``."""
        b = pixel_values.shape[0]
        patches = pixel_values.reshape(b, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(b, 16, 4)
        x = torch.cat([self.cls.expand(b, -1, -1), self.patch(patches)], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)  # (B, 17, dim)
        return self.head(self.norm(x[:, 0]))


ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn": DigitsCNN, "vit": DigitsViT}


def build(arch: str, **kwargs: Any) -> nn.Module:
    """A fresh network of ``arch`` (``cnn`` or ``vit``) with default initialisation."""
    return ARCHITECTURES[arch](**kwargs)


def holdout(labels: np.ndarray, seed: int, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """``(train indices, held-out indices)``: per class, a seeded ``fraction`` held out."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    held: list[int] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n = int(np.ceil(fraction * idx.size))
        held += idx[:n].tolist()
        train += idx[n:].tolist()
    return np.array(sorted(train)), np.array(sorted(held))


def accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy of the 10-way logits (model left in eval mode)."""
    model.eval()
    with torch.no_grad():
        return float((model(images).argmax(-1) == labels).double().mean())


def pretrain(
    arch: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    classes: Sequence[int] = (0, 1, 2, 3, 4),
    seed: int = 0,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 32,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``arch`` on the digits of ``classes``; 20 % of them (seeded) held out.

    Returns:
        ``(model in eval mode, info)``, info with ``arch``, ``classes``, ``seed``, ``epochs``,
        ``n_train``, ``n_heldout``, ``heldout_accuracy`` and ``train_accuracy``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same seed gives the same weights, bit for bit
    try:
        torch.manual_seed(seed)
        model = build(arch)
        keep = np.isin(labels, list(classes))
        x_all = torch.from_numpy(images[keep])
        y_all = torch.from_numpy(labels[keep])
        tr, ho = holdout(y_all.numpy(), seed)
        x, y = x_all[tr], y_all[tr]
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(y), generator=gen)
            for i in range(0, len(y), batch_size):
                idx = order[i : i + batch_size]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        info = {
            "arch": arch,
            "classes": list(classes),
            "seed": seed,
            "epochs": epochs,
            "n_train": len(tr),
            "n_heldout": len(ho),
            "heldout_accuracy": accuracy(model, x_all[ho], y_all[ho]),
            "train_accuracy": accuracy(model, x, y),
        }
    finally:
        torch.set_num_threads(threads)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), info
