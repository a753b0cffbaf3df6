"""The report's Environment block: which machines and software stacks produced the numbers.

Every trial records its environment fingerprint (user attr ``environment``,
:mod:`loran_search.environment`). :func:`environments` groups a study's trials by the fields
that can change a number (:data:`GROUP_KEYS`: CPU model and kernel flags, cores, GPUs, package
versions, compute dtype, quantization, threads, deterministic setting, device), so a study run on
one machine shows one line and a study resumed on another shows two — a reader then knows its
numbers mix machines (bf16 and other kernels differ between CPUs: the same seeds do not give
the same metrics there). Records written before the fingerprint existed count as ``unrecorded``.

:func:`markdown_block` and :func:`html_block` render the block; the report places it after the
data notes and ``report.json`` carries :func:`environments` as ``environments``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from loran_search import record as R

#: The fields a group of trials shares (the ones that can change the numbers, and how they ran).
GROUP_KEYS = (
    "cpu_model", "cpu_flags", "cores", "machine", "gpus", "torch", "transformers", "peft",
    "bitsandbytes", "compute_dtype", "quantization", "threads", "deterministic", "device",
)  # fmt: skip


def environments(trials: Iterable[Any]) -> list[dict[str, Any]]:
    """Group trials by environment, the most trials first.

    Args:
        trials: ``optuna.trial.FrozenTrial`` objects.

    Returns:
        ``[{"fingerprint": {...} | None, "trials": [numbers], "roles": [roles]}, …]``; the
        fingerprint ``None`` gathers the trials that trained but recorded none (records
        written before the fingerprint existed). Trials that never trained are left out: the
        queued ones, and those stopped before any training (an inert configuration skipped,
        a surplus or duplicate trial) — they produced no number, so no machine stands behind
        one.
    """
    groups: dict[tuple[Any, ...] | None, dict[str, Any]] = {}
    for t in trials:
        state = getattr(getattr(t, "state", None), "name", "")
        if state == "WAITING":
            continue
        record = R.TrialRecord.from_frozen(t)
        fp = record.environment
        if fp is None and not _trained(record):
            continue
        key = tuple(_hashable(fp.get(k)) for k in GROUP_KEYS) if fp is not None else None
        group = groups.setdefault(
            key,
            {"fingerprint": {k: fp.get(k) for k in fp} if fp else None, "trials": [], "roles": []},
        )
        group["trials"].append(int(t.number))
        role = record.role_or(R.ROLE_CANDIDATE)
        if role not in group["roles"]:
            group["roles"].append(role)
    out = sorted(groups.values(), key=lambda g: (g["fingerprint"] is None, -len(g["trials"])))
    for g in out:
        g["trials"].sort()
    return out


def _trained(record: R.TrialRecord) -> bool:
    """Whether the trial produced a number.

    A value (COMPLETE; older records too) or a trace of training (a seed's metrics, stability
    or history).
    """
    return (
        record.values is not None
        or bool(record.seed_metrics)
        or bool(record.stability)
        or bool(record.history)
    )


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (dict, list)) else value


def trial_ranges(numbers: list[int]) -> str:
    """``0–13, 15, 17–18``."""
    parts: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            parts.append(_run_text(run))
        run = [n]
    if run:
        parts.append(_run_text(run))
    return ", ".join(parts)


def _run_text(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}–{run[-1]}"


def describe(fp: Mapping[str, Any] | None) -> str:
    """One sentence for one fingerprint (``None``: not recorded)."""
    if fp is None:
        return "not recorded (trials written before loran-search recorded its environment)"

    def get(key: str) -> str:
        value = fp.get(key)
        return "?" if value in (None, "") else str(value)

    flags = f" ({fp['cpu_flags']})" if fp.get("cpu_flags") else ""
    gpus = f"; GPU {fp['gpus']}" if fp.get("gpus") else ""
    det = fp.get("deterministic")
    det_text = "?" if det is None else "on" if det else "off"
    return (
        f"CPU {get('cpu_model')}{flags}, {get('cores')} cores, {get('machine')}{gpus}; "
        f"torch {get('torch')}, transformers {get('transformers')}, peft {get('peft')}, "
        f"bitsandbytes {get('bitsandbytes')}; compute dtype {get('compute_dtype')}, "
        f"quantization {get('quantization')}; {get('threads')} threads, deterministic "
        f"algorithms {det_text}, device {get('device')}"
    )


def lines(groups: list[dict[str, Any]]) -> list[str]:
    """The block's sentences (Markdown inline): one per environment, then a caution if mixed."""
    if not groups:
        return ["No trial has run yet."]
    out = []
    for g in groups:
        roles = ", ".join(g["roles"])
        out.append(f"Trials {trial_ranges(g['trials'])} ({roles}): {describe(g['fingerprint'])}.")
    recorded = [g for g in groups if g["fingerprint"] is not None]
    if len(recorded) > 1:
        out.append(
            f"**The study ran in {len(recorded)} environments.** Numbers are reproducible on "
            "the same machine with the same seeds, not across CPUs (bf16 and other kernels "
            "round differently), so trials from different environments are not bit-for-bit "
            "comparable."
        )
    return out


def markdown_block(groups: list[dict[str, Any]]) -> str:
    """``## Environment`` and its lines, as Markdown."""
    return "\n".join(["## Environment", "", *[f"- {s}" for s in lines(groups)], ""])


def html_block(groups: list[dict[str, Any]], inline: Any = html.escape) -> str:
    """The block as an HTML section (``inline`` renders the Markdown inline marks)."""
    items = "".join(f"<li>{inline(s)}</li>" for s in lines(groups))
    return (
        '<section class="environment" id="environment"><h2>Environment</h2>'
        f"<ul>{items}</ul></section>"
    )
