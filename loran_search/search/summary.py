"""The table printed when a study finishes: baselines, the best candidate and its gain.

For a candidate with mean value ``v̄`` at rank ``r`` and the baseline (identity, same seeds) with
``b̄_r``, the gain is ``Δ = v̄ − b̄_r`` (``b̄_r − v̄`` when minimising, so that a positive gain is
always an improvement) and the relative gain ``Δ / |b̄_r|``. The per-seed paired statistics are
the analysis' job (``loran-search report``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from loran_search import record as R

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

    from loran_search.search.progress import missing_baselines, role_of
    from loran_search.search.study import study_directions

    maximize = study_directions(cfg)[0] == "maximize"
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    finite = [t for t in done if math.isfinite(t.values[0])]
    baselines: dict[int, float] = {}
    for t in finite:
        if role_of(t) == R.ROLE_BASELINE:
            baselines[int(t.params.get(R.PARAM_RANK, 0))] = t.values[0]
    cands = [t for t in finite if role_of(t) == R.ROLE_CANDIDATE]
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
            f"{len(odd)} completed candidate trial(s) have a non-finite value (trials "
            f"{', '.join(str(t.number) for t in odd[:10])}); they are not ranked."
        )
    if not cands:
        lines.append("no completed candidate trial yet.")
        return "\n".join(lines)
    cands.sort(key=lambda t: t.values[0], reverse=maximize)
    header = f"{'#':>5}  {'configuration':<44} {'rank':>4} {metric:>10} {'gain':>9} {'rel.':>7}"
    lines += ["", header, "-" * len(header)]
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
    return "\n".join(lines)
