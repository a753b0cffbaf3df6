"""The table printed when a study finishes: baselines, the best candidate and its gain.

For a candidate with mean value ``v̄`` at rank ``r`` and the baseline (identity, same seeds) with
``b̄_r``, the gain is ``Δ = v̄ − b̄_r`` (``b̄_r − v̄`` when minimising, so that a positive gain is
always an improvement) and the relative gain ``Δ / |b̄_r|``. The per-seed paired statistics are
the analysis' job (``loran-search report``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from loran_search.config import StudyConfig


def _fmt_params(t: Any) -> str:
    spec = t.user_attrs.get("activation_spec") or {}
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in (spec.get("params") or {}).items()
    )
    extra = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in t.params.items()
        if k.startswith("training.")
    )
    name = spec.get("name", t.params.get("activation", "?"))
    inner = ", ".join(x for x in (params, extra) if x)
    return f"{name}({inner})"


def summarize(study: optuna.Study, cfg: StudyConfig) -> str:
    """A plain-text summary table of the study."""
    from optuna.trial import TrialState

    from loran_search.search.study import study_directions

    maximize = study_directions(cfg)[0] == "maximize"
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    baselines: dict[int, float] = {}
    for t in done:
        if t.user_attrs.get("role") == "baseline":
            baselines[int(t.params.get("rank", 0))] = t.values[0]
    cands = [t for t in done if t.user_attrs.get("role", "candidate") == "candidate"]
    counts = {s: sum(1 for t in trials if t.state == s) for s in TrialState}
    metric = cfg.study.metric
    lines = [
        f"Study '{cfg.study.name}' — {metric} ({'max' if maximize else 'min'}imize), "
        f"mean over seeds {list(cfg.study.seeds)}",
        "trials: " + ", ".join(f"{s.name.lower()} {n}" for s, n in counts.items() if n),
    ]
    if baselines:
        lines.append(
            "baseline (identity = QLoRA): "
            + ", ".join(f"r={r}: {v:.4f}" for r, v in sorted(baselines.items()))
        )
    if not cands:
        lines.append("no completed candidate trial yet.")
        return "\n".join(lines)
    cands.sort(key=lambda t: t.values[0], reverse=maximize)
    header = f"{'#':>5}  {'configuration':<44} {'rank':>4} {metric:>10} {'gain':>9} {'rel.':>7}"
    lines += ["", header, "-" * len(header)]
    for t in cands[:10]:
        r = int(t.params.get("rank", 0))
        v = t.values[0]
        b = baselines.get(r)
        gain = None if b is None else (v - b if maximize else b - v)
        rel = f"{100 * gain / abs(b):+.1f}%" if gain is not None and b else "—"
        gain_s = f"{gain:+.4f}" if gain is not None else "—"
        lines.append(
            f"{t.number:>5}  {_fmt_params(t):<44.44} {r:>4} {v:>10.4f} {gain_s:>9} {rel:>7}"
        )
    best = cands[0]
    r = int(best.params.get("rank", 0))
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
    if best.user_attrs.get("adapter_path"):
        lines.append(f"adapter: {best.user_attrs['adapter_path']}")
    return "\n".join(lines)
