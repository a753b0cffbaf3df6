"""The report's first screen: one headline sentence, the setup in one line, the terms defined.

:func:`headline` answers the study's question in one plain sentence, in the metric's natural
unit, from the same numbers as the verdict (:mod:`loran_search.analysis.verdict`, issue 19): the
best configuration — the best *confirmed* one when a confirmation ran — its metric and QLoRA's on
the same held-out examples, the paired gain with the interval of its decisive test, the seeds
and the number of examples. The answer word is derived, never chosen:

* ``Yes`` — the decisive test is significant (``significant``, after Holm) and the gain points
  the metric's good way (``sign · gain > 0``);
* ``No`` with "significantly worse" — significant the other way;
* ``No`` with "not distinguishable from QLoRA" — not significant: the interval includes 0.
  Never "equal" or "harmless": a non-significant test does not show that;
* ``Not answered on held-out data yet`` — only the search (validation split) has a gain: it is
  the best of many looks, so optimistic;
* otherwise the reason there is no answer (no trials, no completed run, no baseline, no
  interval).

Accuracy-like metrics (``accuracy``, ``macro_f1``, …
:func:`~loran_search.analysis.fmt.is_fraction`) are shown in percent and their gains in points
(``0.022`` → ``2.2 points``); every other metric in its own units with three significant digits
(:func:`~loran_search.analysis.fmt.metric_value`, :func:`~loran_search.analysis.fmt.metric_gain`).

:func:`study_info` reads what the setup line needs from the study (the ``loran.setup``
record of the model, task and training, the confirmation setup, the learning rates the trials
trained with, the trials' dates, the code version); :func:`setup_line` writes it;
:data:`GLOSSARY` defines every technical term once.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loran_search import record as R
from loran_search.analysis.configurations import EVIDENCE_CONFIRMATION, measured_rows
from loran_search.analysis.fmt import is_fraction, metric_gain, metric_value
from loran_search.analysis.model import Analysis
from loran_search.words import count, plural

if TYPE_CHECKING:
    import optuna

#: Embedded datasets, and what one of their examples is called.
DATASET_ITEMS = {
    "bbc-news": ("BBC News article", "BBC News articles"),
    "aclsum": ("ACLSum abstract", "ACLSum abstracts"),
    "digits": ("digit image", "digit images"),
    "cartpole": ("CartPole episode", "CartPole episodes"),
}


def _gain_words(metric: str, gain: float, low: float, high: float, level: float) -> str:
    unit = f" {plural(abs(round(100 * gain, 1)), 'point')}" if is_fraction(metric) else ""
    text = f"{metric_gain(metric, gain)}{unit}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{metric_gain(metric, low)}, {metric_gain(metric, high)}]"
        if math.isfinite(level) and not math.isclose(level, 0.95):
            text += f" ({100 * level:.4g} % interval)"
    return text


def _items(n: int, task: str | None, held_out: bool) -> str:
    """``448 held-out BBC News articles`` / ``256 validation examples``."""
    one, many = DATASET_ITEMS.get(task or "", ("example", "examples"))
    if (task or "") not in DATASET_ITEMS and task:
        one, many = f"{task} example", f"{task} examples"
    where = "held-out " if held_out else "validation "
    return f"{n} {where}{one if n == 1 else many}"


def headline(a: Analysis) -> str:
    """The answer in one sentence (module docstring), from the configuration table's numbers."""
    rec, c = a.records, a.configurations
    if len(rec.trials) == 0 and len(rec.confirm_trials) == 0:
        return "No answer yet: the study has no trials (run it: `loran-search run FILE`)."
    done, with_gain = measured_rows(c)
    if len(done) == 0:
        return "No answer yet: no candidate configuration has completed a run."
    if len(with_gain) == 0:
        return (
            "No answer: no candidate can be compared with QLoRA — the study has no completed "
            "QLoRA baseline at a candidate's rank and seeds (`study.baseline: true`)."
        )
    confirmed = with_gain[with_gain["evidence"] == EVIDENCE_CONFIRMATION]
    held_out = len(confirmed) > 0
    best = (confirmed if held_out else with_gain).iloc[0]
    metric = rec.metric
    cand = float(best["confirm_metric_mean"] if held_out else best["metric_mean"])
    base = float(best["confirm_baseline_mean"] if held_out else best["baseline_mean"])
    gain = float(best["gain"])
    low, high = float(best["gain_ci_low"]), float(best["gain_ci_high"])
    level = float(best.get("ci_level", math.nan))
    n_seeds = int(best["n_paired"])
    n_ex = float(best["n_examples"])
    task = a.study_info.get("task") if a.study_info else None
    where = f"on {_items(int(n_ex), task, held_out)}, " if math.isfinite(n_ex) and n_ex > 0 else ""
    if not held_out and not where:
        where = "on the validation split, "
    scored = (
        f"{best['config']} scored {metric_value(metric, cand)} vs QLoRA "
        f"{metric_value(metric, base)}"
        f"{'' if is_fraction(metric) else f' in {metric}'} {where}{count(n_seeds, 'seed')}: "
        f"{_gain_words(metric, gain, low, high, level)}"
    )
    tested = math.isfinite(low) and math.isfinite(high) and math.isfinite(float(best["p_value"]))
    if not held_out:
        return (
            f"Not answered on held-out data yet: the search's best, {scored} — optimistic (the "
            "best of the search, chosen on these examples); confirm it on the test split "
            "(`loran-search confirm FILE`)."
        )
    if not tested:
        return (
            f"Undecided: {scored} — no interval or p-value (needs at least 2 seeds with varying "
            "differences)."
        )
    significant = isinstance(best["significant"], (bool, np.bool_)) and bool(best["significant"])
    good = rec.sign * gain
    if significant and good > 0:
        return f"Yes: {scored} — significantly better than QLoRA."
    if significant:
        return f"No: {scored} — significantly worse than QLoRA."
    return f"No: {scored} — not distinguishable from QLoRA (the interval includes 0)."


# ------------------------------------------------------------------------------- setup line


def study_info(study: optuna.Study, environments: list[dict[str, Any]]) -> dict[str, Any]:
    """What the setup line reads from ``study`` (JSON-able).

    Keys: ``model``, ``quantization``, ``task``, ``train_split``, ``eval_split``,
    ``confirm_split``, ``train_size``, ``eval_size``, ``steps``, ``learning_rates`` (the
    distinct learning rates the trials trained with: ``training.learning_rate`` trial params
    when the search varied it, else the study's ``training.learning_rate``), ``machine`` (the
    first environment's CPU, cores and GPU; ``"N machines"`` when the study ran on several),
    ``dates`` (first and last trial completion, ISO days), ``code`` (the loran-search version
    the trials recorded) and ``git`` (the commit of the code writing the report, when it is a
    git checkout). A key is ``None`` when the study does not record it.
    """
    attrs = R.StudyAttrs.of(study.user_attrs)
    model, task, training = (attrs.section(k) for k in ("model", "task", "training"))
    confirm = attrs.confirm
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
    lrs = sorted(
        {float(v) for t in trials for k, v in t.params.items() if k.endswith("learning_rate")}
    )
    if not lrs and isinstance(training.get("learning_rate"), (int, float)):
        lrs = [float(training["learning_rate"])]
    ends = sorted(t.datetime_complete for t in trials if t.datetime_complete is not None)
    recorded = [g for g in environments if g.get("fingerprint")]
    machine = None
    code = None
    if recorded:
        fp = recorded[0]["fingerprint"]
        if len(recorded) > 1:
            machine = f"{len(recorded)} machines (see Environment)"
        else:
            gpu = f", GPU {fp['gpus']}" if fp.get("gpus") else ""
            cores = f", {fp['cores']} cores" if fp.get("cores") else ""
            machine = f"{fp.get('cpu_model') or 'unknown CPU'}{cores}{gpu}"
        code = fp.get("loran_search") or fp.get("loran-search")
    if code is None:
        from loran_search import __version__

        code = __version__
    return {
        "model": model.get("name"),
        "quantization": model.get("quantization"),
        "compute_dtype": model.get("compute_dtype"),
        "task": task.get("name"),
        "train_split": task.get("train_split"),
        "eval_split": task.get("eval_split"),
        "train_size": task.get("train_size"),
        "eval_size": task.get("eval_size"),
        "confirm_split": confirm.get("split") if isinstance(confirm, dict) else None,
        "steps": training.get("max_steps"),
        "spike_factor": training.get("spike_factor"),
        "learning_rates": lrs,
        "machine": machine,
        "dates": [ends[0].date().isoformat(), ends[-1].date().isoformat()] if ends else None,
        "code": str(code),
        "git": git_commit(),
    }


def git_commit() -> str | None:
    """The short commit of the loran-search checkout, ``None`` when it is not a git checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def setup_line(info: dict[str, Any]) -> str:
    """``Setup: model …; data …; … steps at learning rate …; machine …; date …; code …``."""
    if not info:
        return "Setup: not recorded."

    def known(v: Any) -> bool:
        return v is not None and v != "" and v != []

    parts = []
    if known(info.get("model")):
        quant = [x for x in (info.get("quantization"), info.get("compute_dtype")) if known(x)]
        parts.append(f"model {info['model']}" + (f" ({', '.join(quant)})" if quant else ""))
    else:
        parts.append("model not recorded")
    if known(info.get("task")):
        splits = []
        if known(info.get("train_split")):
            size = f"{info['train_size']} examples of " if known(info.get("train_size")) else ""
            splits.append(f"trained on {size}{info['train_split']}")
        if known(info.get("eval_split")):
            size = f" ({info['eval_size']} examples)" if known(info.get("eval_size")) else ""
            splits.append(f"searched on {info['eval_split']}{size}")
        if known(info.get("confirm_split")):
            splits.append(f"confirmed on {info['confirm_split']}")
        parts.append(f"data {info['task']}" + (f": {', '.join(splits)}" if splits else ""))
    else:
        parts.append("data not recorded")
    lrs = info.get("learning_rates") or []
    lr = (
        f"learning {'rate' if len(lrs) == 1 else 'rates'} {', '.join(f'{x:g}' for x in lrs)}"
        if lrs
        else "learning rate not recorded"
    )
    steps = (
        f"{count(int(info['steps']), 'step')}" if known(info.get("steps")) else "steps not recorded"
    )
    parts.append(f"{steps} at {lr}" if lrs or known(info.get("steps")) else "training not recorded")
    parts.append(
        f"machine {info['machine']}" if known(info.get("machine")) else "machine not recorded"
    )
    dates = info.get("dates")
    if dates:
        parts.append(
            f"date {dates[0]}" if dates[0] == dates[1] else f"dates {dates[0]} – {dates[1]}"
        )
    else:
        parts.append("date not recorded")
    code = f"loran-search {info.get('code') or 'version not recorded'}"
    if info.get("git"):
        code += f" (report by git {info['git']})"
    parts.append(f"code {code}")
    return "Setup: " + "; ".join(parts) + "."


# -------------------------------------------------------------------------------- glossary

#: Every technical term of the report, defined once in plain words: ``(term, definition)``.
GLOSSARY: tuple[tuple[str, str], ...] = (
    (
        "QLoRA",
        "the baseline: the same adapter with the identity in place of f (plain LoRA on the "
        "quantized model), trained at the same rank on the same seeds.",
    ),
    (
        "gain",
        "the candidate's score minus QLoRA's on the same seed and the same examples, averaged "
        "over seeds; for accuracy, in percentage points.",
    ),
    (
        "held-out / search split",
        "the search chooses configurations on the validation (val) split; the best few are "
        "then trained again on fresh seeds and scored once on the test split, which the search "
        "never saw. Only the held-out gain answers the question; a search gain is optimistic.",
    ),
    (
        "paired test",
        "a test on the differences candidate − QLoRA, seed by seed (a t-test on the seed means; "
        "with one seed, McNemar's exact test on the examples they score differently). Pairing "
        "removes what both share, such as hard examples.",
    ),
    (
        "interval",
        "the range of true gains the data are consistent with (95 % unless stated). When it "
        "contains 0 the data cannot tell the candidate from QLoRA, which does not show that they "
        "perform alike.",
    ),
    (
        "p and Holm",
        "p is the chance of a gain at least this large if there were none. Testing many "
        "configurations makes some look good by luck, so p is adjusted with Holm's method for "
        "the number of tests; significant means the adjusted p is below 0.05.",
    ),
    (
        "MDE",
        "minimum detectable effect: the smallest true gain this design (seeds × examples) "
        "would find 80 % of the time. A real gain below it can easily be missed.",
    ),
    (
        "ν (non-linearity)",
        "how far the activation f moved the adapter's update away from plain LoRA: "
        "‖f(P) − P‖ / ‖P‖ with P = B·A. 0 means f acted as the identity.",
    ),
    (
        "inert",
        "a configuration whose ν stayed below the threshold in every run: it trained as "
        "LoRA in all but name, so its result says nothing about f.",
    ),
    (
        "companion metric",
        "a continuous score measured beside the main metric (the log-likelihood of the right "
        "label, or the summary loss) that shows smaller changes than accuracy can.",
    ),
    (
        "diverged / loss spike",
        "a run diverged when its training loss exceeded training.divergence_factor × the "
        "initial loss or became NaN; a loss spike is a step whose loss exceeds "
        "training.spike_factor × the median of the previous 10 steps.",
    ),
)
