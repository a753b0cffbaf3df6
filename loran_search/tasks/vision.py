"""Image classification on scikit-learn's digits: a network pretrained on 0–4 adapted to 5–9.

Data: the embedded ``digits`` asset (1,797 8×8 images, :mod:`loran_search.zoo.digits`); the
task keeps the digits ``5 … 9`` (:data:`TASK_CLASSES`, 896 images) and splits them like every
embedded dataset (:func:`loran_search.tasks.data.three_way_split`, stratified by digit, seeded
by ``task.split_seed``: ``test`` 20 %, ``val`` 1/8 of the rest, ``train`` the rest), then draws
``task.train_size`` / ``task.eval_size`` examples as :func:`~loran_search.tasks.data.task_rows`
does. Example ids are ``digits/<row of digits.csv.gz>``, the same in every run and process.

The network's 10 logits ``z`` are scored over the task's labels only, like the label words of
text classification: ``log p(l | x) = z_l − log Σ_{l'∈L} exp z_{l'}`` for ``l ∈ L = {5, …, 9}``.
Training minimises the mean of ``−log p(y | x)`` over a micro-batch (:meth:`DigitsTask.loss`);
evaluation predicts ``argmax_l log p(l | x)`` (ties → the lower digit). Metrics, per-example
outcomes and their means are the text classification task's: ``accuracy = mean(correct)``,
``macro_f1``, ``gold_logprob_mean = mean(gold_logprob)`` with ``gold_logprob = log p(y | x)``;
each example ``{"id", "gold", "pred", "correct", "gold_logprob"}`` (labels as strings).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from loran_search.config import TaskSection
from loran_search.tasks.base import Truncation, model_device
from loran_search.tasks.data import TaskError, _split_name, three_way_split
from loran_search.tasks.metrics import TASK_METRICS, label_metrics

TASK_CLASSES = (5, 6, 7, 8, 9)
DATASET = "digits"


@dataclass
class ImageExample:
    """One image (``(1, 8, 8)`` float32 tensor) and its digit."""

    pixels: Any
    label: int


def load_digits() -> tuple[Any, Any]:
    """``(images, labels)`` of the embedded ``digits`` asset's ``digits.npz``.

    Raises:
        AssetError: The file cannot be read as the arrays it was built with (damaged after its
            hashes were checked, or built by a broken builder); the message names the file and
            the command that rebuilds it.
    """
    import zipfile

    import numpy as np

    from loran_search import assets

    path = assets.ensure(DATASET) / "digits.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise assets.AssetError(
            f"The embedded dataset file {path} cannot be read ({type(err).__name__}: {err}): it "
            f"is damaged. Rebuild it: loran-search assets fetch {DATASET} --force"
        ) from None
    return images, labels


def digits_rows() -> list[dict[str, Any]]:
    """Every image of the embedded ``digits`` asset as ``{"id", "label", "index"}`` rows."""
    _, labels = load_digits()
    return [{"id": f"digits/{i}", "label": int(y), "index": i} for i, y in enumerate(labels)]


class DigitsTask:
    """The digits 5–9 task (see the module docstring)."""

    type = "classification"
    metric_names = TASK_METRICS["classification"]

    def __init__(self, cfg: TaskSection) -> None:
        import torch

        if cfg.name != DATASET:
            raise TaskError(
                f"task.name {cfg.name!r}: the image kinds serve the embedded dataset "
                f"{DATASET!r} only; set task.name: {DATASET}."
            )
        self.cfg = cfg
        images = torch.from_numpy(load_digits()[0])
        rows = [r for r in digits_rows() if r["label"] in TASK_CLASSES]
        splits = three_way_split(rows, cfg.split_seed, "label")
        where = f"task.name {cfg.name!r}"
        train_name = _split_name(cfg.train_split, list(splits), where + " (task.train_split)")
        eval_name = _split_name(cfg.eval_split, list(splits), where + " (task.eval_split)")
        chosen = []
        for name, size, offset in ((train_name, cfg.train_size, 0), (eval_name, cfg.eval_size, 1)):
            part = list(splits[name])
            if size is not None and size <= 0:
                raise TaskError(f"task.{('train', 'eval')[offset]}_size must be > 0 (got {size}).")
            if size is not None and size < len(part):
                rng = random.Random(cfg.split_seed + offset)
                part = [part[i] for i in sorted(rng.sample(range(len(part)), size))]
            chosen.append(part)
        train_rows, eval_rows = chosen
        self.eval_split = eval_name
        self.notes = [
            f"digits {TASK_CLASSES[0]}–{TASK_CLASSES[-1]} ({len(rows)} images) split "
            f"train/val/test stratified by digit (split_seed {cfg.split_seed}); the network was "
            "pretrained on the digits 0–4"
        ]
        self.labels = [str(c) for c in TASK_CLASSES]
        self.columns = torch.tensor(TASK_CLASSES)
        self.truncation = Truncation(n_train=len(train_rows), n_eval=len(eval_rows))
        self.train_examples = [ImageExample(images[r["index"]], r["label"]) for r in train_rows]
        self.eval_images = images[[r["index"] for r in eval_rows]]
        self.eval_gold = [str(r["label"]) for r in eval_rows]
        self.eval_ids = [r["id"] for r in eval_rows]

    def _logp(self, model: Any, pixels: Any) -> Any:
        """``log p(l | x)`` over the task's labels: ``(B, |L|)`` float32."""
        import torch

        logits = model(pixels.to(model_device(model))).float()  # (B, 10)
        return torch.log_softmax(logits[:, self.columns.to(logits.device)], dim=-1)

    def loss(self, model: Any, batch: list[ImageExample]) -> Any:
        """Mean ``−log p(y | x)`` of a micro-batch (module docstring)."""
        import torch

        pixels = torch.stack([e.pixels for e in batch])  # (B, 1, 8, 8)
        gold = torch.tensor([TASK_CLASSES.index(e.label) for e in batch])
        logp = self._logp(model, pixels)
        return torch.nn.functional.nll_loss(logp, gold.to(logp.device))

    def evaluate_examples(
        self, model: Any, batch_size: int = 8
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Metrics and per-example outcomes on the evaluation split (model left in eval mode)."""
        import torch

        model.eval()
        with torch.no_grad():
            logp = torch.cat(
                [
                    self._logp(model, self.eval_images[i : i + batch_size]).double().cpu()
                    for i in range(0, len(self.eval_ids), batch_size)
                ]
            )
        examples = []
        for i, (ex_id, gold) in enumerate(zip(self.eval_ids, self.eval_gold, strict=True)):
            pred = self.labels[int(logp[i].argmax())]
            examples.append(
                {
                    "id": ex_id,
                    "gold": gold,
                    "pred": pred,
                    "correct": int(pred == gold),
                    "gold_logprob": float(logp[i, self.labels.index(gold)]),
                }
            )
        return label_metrics(examples, self.eval_gold), examples

    def evaluate(self, model: Any, batch_size: int = 8) -> dict[str, float]:
        """The metrics of :meth:`evaluate_examples`."""
        return self.evaluate_examples(model, batch_size)[0]
