"""The table printed when a study finishes: baselines, the best candidate and its gain.

For a candidate with mean value ``v̄`` at rank ``r`` and the baseline (identity, same seeds) with
``b̄_r``, the gain is ``Δ = v̄ − b̄_r`` (``b̄_r − v̄`` when minimising, so that a positive gain is
always an improvement) and the relative gain ``Δ / |b̄_r|``. The per-seed paired statistics are
the analysis' job (``loran-search report``).

The search table's numbers are on ``task.eval_split`` (``val``) with ``study.seeds``: the
configuration was chosen on them, so the best of them is optimistic (the winner's curse). The
confirmation lines that follow are the held-out numbers: each confirmed configuration's mean
over ``study.confirm.seeds`` on ``study.confirm.split`` against the confirmed baseline at its
rank on the same seeds and split.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.words import count, plural

if TYPE_CHECKING:
    import optuna

    from loran_search.config import StudyConfig


def _fmt_params(t: Any) -> str:
    spec = t.user_attrs.get(R.ACTIVATION_SPEC) or {}
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in (spec.get("params") or {}).items()
    )
    extra = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in t.params.items()
        if k.startswith("training.")
    )
    name = spec.get("name", t.params.get(R.PARAM_ACTIVATION, "?"))
    inner = ", ".join(x for x in (params, extra) if x)
    return f"{name}({inner})"


def summarize(study: optuna.Study, cfg: StudyConfig) -> str:
    """A plain-text summary table of the study.

    Only COMPLETE trials with a finite value are ranked or compared; a rank whose baseline
    failed, failed trials by kind and non-finite values (older records) are stated.
    """
    from optuna.trial import TrialState

    from loran_search.search.progress import missing_baselines, role_of, study_directions

    maximize = study_directions(cfg)[0] == "maximize"
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    finite = [t for t in done if math.isfinite(t.values[0])]
    baselines: dict[int, float] = {}
    for t in finite:
        if role_of(t) == R.ROLE_BASELINE:
            baselines[int(t.params.get(R.PARAM_RANK, 0))] = t.values[0]
    cands = [
        t for t in finite if role_of(t) == R.ROLE_CANDIDATE and R.DUPLICATE_OF not in t.user_attrs
    ]
    counts = {s: sum(1 for t in trials if t.state == s) for s in TrialState}
    kinds = Counter(
        R.TrialRecord.from_frozen(t).failure_kind or "no reason recorded"
        for t in trials
        if t.state == TrialState.FAIL
    )
    metric = cfg.study.metric
    shown = []
    for state, n in counts.items():
        if not n:
            continue
        text = f"{state.name.lower()} {n}"
        if state == TrialState.FAIL:
            text += " (" + ", ".join(f"{k} {c}" for k, c in sorted(kinds.items())) + ")"
        shown.append(text)
    lines = [
        f"Study '{cfg.study.name}' — {metric} ({'max' if maximize else 'min'}imize), "
        f"mean over seeds {list(cfg.study.seeds)}",
        "trials: " + ", ".join(shown),
    ]
    forms = R.form_counts(R.TrialRecord.from_frozen(t) for t in trials)
    if forms["proposed"]:
        lines.append(
            f"forms: proposed {forms['proposed']} ({forms['distinct']} distinct), screened "
            f"{forms['screened']}, deduplicated {forms['deduplicated']}, skipped as inert "
            f"{forms['inert']}, trained {forms['trained']}"
        )
    if baselines:
        lines.append(
            "baseline (identity = QLoRA): "
            + ", ".join(f"r={r}: {v:.4f}" for r, v in sorted(baselines.items()))
        )
    for rank, failure in sorted(missing_baselines(trials).items(), key=lambda kv: str(kv[0])):
        lines.append(
            f"no COMPLETE baseline at rank {rank} (its trial failed: {failure}); gains at that "
            "rank are unavailable — run the same command again to retry it."
        )
    odd = [t for t in done if not math.isfinite(t.values[0]) and role_of(t) == R.ROLE_CANDIDATE]
    if odd:
        lines.append(
            f"{count(len(odd), 'completed candidate trial')} {plural(len(odd), 'has')} a "
            f"non-finite value (trials {', '.join(str(t.number) for t in odd[:10])}); "
            f"{plural(len(odd), 'it')} {plural(len(odd), 'is')} not ranked."
        )
    if not cands:
        lines.append("no completed candidate trial yet.")
        return "\n".join(lines)
    cands.sort(key=lambda t: t.values[0], reverse=maximize)
    header = f"{'#':>5}  {'configuration':<44} {'rank':>4} {metric:>10} {'gain':>9} {'rel.':>7}"
    lines += [
        "",
        f"search (on '{cfg.task.eval_split}', seeds {list(cfg.study.seeds)}; optimistic: the "
        "configurations are chosen on these numbers):",
        header,
        "-" * len(header),
    ]
    for t in cands[:10]:
        r = int(t.params.get(R.PARAM_RANK, 0))
        v = t.values[0]
        b = baselines.get(r)
        gain = None if b is None else (v - b if maximize else b - v)
        rel = f"{100 * gain / abs(b):+.1f}%" if gain is not None and b else "—"
        gain_s = f"{gain:+.4f}" if gain is not None else "—"
        lines.append(
            f"{t.number:>5}  {_fmt_params(t):<44.44} {r:>4} {v:>10.4f} {gain_s:>9} {rel:>7}"
        )
    best = cands[0]
    r = int(best.params.get(R.PARAM_RANK, 0))
    b = baselines.get(r)
    if b is not None:
        gain = best.values[0] - b if maximize else b - best.values[0]
        lines += [
            "",
            f"best: trial {best.number} {_fmt_params(best)} at rank {r}: "
            f"{metric} {best.values[0]:.4f} vs baseline {b:.4f} (gain {gain:+.4f})",
        ]
    else:
        lines += [
            "",
            f"best: trial {best.number} {_fmt_params(best)} at rank {r}: "
            f"{metric} {best.values[0]:.4f} (no baseline at this rank)",
        ]
    if best.user_attrs.get(R.ADAPTER_PATH):
        lines.append(f"adapter: {best.user_attrs[R.ADAPTER_PATH]}")
    lines += confirmation_lines(study, cfg, trials)
    return "\n".join(lines)


def _cell(x: float | None, sign: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def confirmation_lines(study: optuna.Study, cfg: StudyConfig, trials: list[Any]) -> list[str]:
    """The confirmation result: per confirmed configuration, its held-out mean vs the baseline's.

    Empty when the study has no confirmation trial.
    """
    from optuna.trial import TrialState

    from loran_search.search.progress import role_of, study_directions

    confirms = [t for t in trials if role_of(t) in R.CONFIRM_ROLES]
    if not confirms:
        return []
    maximize = study_directions(cfg)[0] == "maximize"
    setup = study.user_attrs.get(R.STUDY_CONFIRM) or {}
    split = setup.get("split") or next(
        (t.user_attrs.get(R.EVAL_SPLIT) for t in confirms if t.user_attrs.get(R.EVAL_SPLIT)), "?"
    )
    seeds = setup.get("seeds", "?")
    metric = cfg.study.metric

    def value(t: Any) -> float | None:
        if t.state == TrialState.COMPLETE and t.values and math.isfinite(t.values[0]):
            return float(t.values[0])
        return None

    by_number = {t.number: t for t in trials}
    base: dict[int, Any] = {}
    for t in confirms:
        if role_of(t) == R.ROLE_CONFIRM_BASELINE:
            r = int((t.params or {}).get(R.PARAM_RANK, 0))
            if r not in base or value(t) is not None:
                base[r] = t
    done: dict[str, Any] = {}
    for t in confirms:  # one row per configuration: its COMPLETE trial, else its latest
        if role_of(t) != R.ROLE_CONFIRM:
            continue
        key = str(t.user_attrs.get(R.CONFIRM_KEY) or t.number)
        if key not in done or value(done[key]) is None:
            done[key] = t
    lines = [
        "",
        f"confirmation (held out: on '{split}', seeds {seeds}, never used to choose; "
        f"{metric} mean over those seeds):",
    ]
    header = (
        f"{'#':>5}  {'configuration':<44} {'rank':>4} {'search':>9} {'confirm':>9} "
        f"{'baseline':>9} {'gain':>9}"
    )
    lines += [header, "-" * len(header)]
    for t in sorted(done.values(), key=lambda t: t.number):
        r = int((t.params or {}).get(R.PARAM_RANK, 0))
        v = value(t)
        b = value(base[r]) if r in base else None
        searched = [
            by_number[n].values[0]
            for n in (t.user_attrs.get(R.CONFIRM_OF) or [])
            if n in by_number and value(by_number[n]) is not None
        ]
        s_best = (max(searched) if maximize else min(searched)) if searched else None
        gain = None if v is None or b is None else (v - b if maximize else b - v)
        state = "" if v is not None else f"  ({t.state.name.lower()})"
        lines.append(
            f"{t.number:>5}  {_fmt_params(t):<44.44} {r:>4} {_cell(s_best):>9} {_cell(v):>9} "
            f"{_cell(b):>9} {_cell(gain, True):>9}{state}"
        )
    tuned = [
        f"  #{t.number} at {json.dumps(t.user_attrs.get(R.TUNED), sort_keys=True)}, its baseline "
        f"at {json.dumps(base[r].user_attrs.get(R.TUNED) or {}, sort_keys=True)}"
        for t in sorted(done.values(), key=lambda t: t.number)
        if t.user_attrs.get(R.TUNED) and (r := int((t.params or {}).get(R.PARAM_RANK, 0))) in base
    ]
    if tuned:  # study.tune (issue 21): each arm confirmed at its own best point of the grid
        lines.append("tuned (each arm at its own best point of study.tune on the search split):")
        lines += tuned
    lines.append(
        f"search = the best search value on '{cfg.task.eval_split}' (optimistic); confirm and "
        f"baseline = held out on '{split}'; gain = confirm − baseline"
        + (" (baseline − confirm when minimising)." if not maximize else ".")
    )
    return lines
