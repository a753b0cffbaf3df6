"""Shared machinery of the tasks: prompt encoding with reported truncation, batching.

A training example is ``input_ids = prompt ⧺ answer`` with ``labels = [-100]·|prompt| ⧺ answer``,
so the causal-LM loss (mean token cross-entropy over positions whose label is not -100)
covers the answer tokens only:

    loss = −(1/|A|) Σ_{t∈A} log p(x_t | x_<t),   A = answer positions of the (micro-)batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loran_search.tasks.data import TaskError

IGNORE = -100


@dataclass
class Example:
    """One tokenized training example (labels are -100 outside the answer)."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class Truncation:
    """How many examples lost tokens to ``task.max_length`` (reported in the run result).

    Attributes:
        train_inputs: Training prompts whose text was cut.
        train_targets: Training answers (summaries) that were cut.
        eval_inputs: Evaluation prompts whose text was cut.
        eval_targets: Evaluation references longer than the generation budget (summarization).
        n_train: Training examples.
        n_eval: Evaluation examples.
    """

    train_inputs: int = 0
    train_targets: int = 0
    eval_inputs: int = 0
    eval_targets: int = 0
    n_train: int = 0
    n_eval: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON result."""
        return {k: v for k, v in self.__dict__.items() if k != "notes"}


def special_prefix(tokenizer: Any) -> list[int]:
    """Ids the tokenizer puts before the text by itself (e.g. ``<s>`` for LLaMA-2; often none)."""
    with_special = tokenizer("a b", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a b", add_special_tokens=False)["input_ids"]
    n = len(with_special) - len(plain)
    return list(with_special[:n]) if n > 0 and with_special[n:] == plain else []


class PromptEncoder:
    r"""Encodes ``template.format(text=…)`` under a token budget, cutting only the text.

    The template is split at ``{text}`` into a prefix and a suffix that are tokenized once; the
    text is tokenized alone and cut from the right to fit, so the instruction after the text
    (``"\nTopic:"``) always survives truncation.
    """

    def __init__(self, tokenizer: Any, template: str, where: str = "task.prompt") -> None:
        if template.count("{text}") != 1:
            raise TaskError(
                f"{where} must contain '{{text}}' exactly once (got {template!r}), "
                "e.g. '{text}\\nTopic:'."
            )
        prefix, suffix = template.split("{text}")
        self.tokenizer = tokenizer
        self.bos = special_prefix(tokenizer)
        self.prefix = self._ids(prefix)
        self.suffix = self._ids(suffix)

    def _ids(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    @property
    def fixed_len(self) -> int:
        """Tokens of the template without the text."""
        return len(self.bos) + len(self.prefix) + len(self.suffix)

    def encode(self, text: str, budget: int) -> tuple[list[int], bool]:
        """``(ids, truncated)`` with ``len(ids) <= budget``."""
        room = budget - self.fixed_len
        if room < 1:
            raise TaskError(
                f"task.max_length leaves {budget} prompt tokens but the template alone takes "
                f"{self.fixed_len}; raise task.max_length or shorten task.prompt."
            )
        ids = self._ids(str(text))
        return self.bos + self.prefix + ids[:room] + self.suffix, len(ids) > room


def pad_batch(
    seqs: Sequence[Sequence[int]],
    pad_id: int,
    *,
    left: bool,
    labels: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Pad to the longest sequence; ``position_ids`` count real tokens only (0 at the first)."""
    import torch

    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    lab = torch.full((len(seqs), n), IGNORE, dtype=torch.long) if labels is not None else None
    for i, s in enumerate(seqs):
        sl = slice(n - len(s), n) if left else slice(0, len(s))
        ids[i, sl] = torch.tensor(list(s), dtype=torch.long)
        mask[i, sl] = 1
        if lab is not None and labels is not None:
            lab[i, sl] = torch.tensor(list(labels[i]), dtype=torch.long)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
    if lab is not None:
        out["labels"] = lab
    return out


def model_device(model: Any) -> Any:
    """Device of the model's first parameter."""
    return next(model.parameters()).device
