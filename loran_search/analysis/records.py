"""Read a study's trials into tidy tables, tolerant of older and partial trial records.

The study's metric and direction come from its user_attrs (``metric``/``direction``, or the
search's ``loran.setup`` = ``{metric, directions, …}``), else from the only key of
``seed_metrics`` and the study's first direction. The trial record is the contract of DESIGN.md,
named in :mod:`loran_search.record`; every trial is read through
:meth:`loran_search.record.TrialRecord.from_frozen`.

Two tables come out for the search (roles ``candidate`` and ``baseline``), and the same two for
the confirmation (roles ``confirm`` and ``confirm_baseline``: the top candidates and the QLoRA
baseline retrained on disjoint seeds and evaluated on the confirmation split), kept apart so that
no search statistic ever mixes in a confirmation run:

* ``trials`` / ``confirm_trials``: one row per trial (state, role, activation, family, rank,
  resolved parameters, configuration key, cost, failure, record version, ``eval_split``,
  ``confirm_of``);
* ``runs`` / ``confirm_runs``: one row per (trial, seed) — the seed's metric, its companion
  metric (``gold_logprob_mean`` or ``summary_loss``), stability telemetry and the mechanism
  medians (``nonlinearity``, ``p_rms``, ``stable_rank``, ``stable_rank_lora``, ``p_abs_p999_max``,
  ``inert``). This is the unit every seed-level statistic is computed from.

Per-example outcomes (user attrs ``examples.<seed>``, columnar ``{"id": [...], "correct": [...],
...}``, long ones in parts, as :attr:`loran_search.record.TrialRecord.examples` joins them) are
kept per trial in ``Records.examples`` (``{trial: {seed: {column: list}}}``);
:func:`examples_frame` turns one trial's into a tidy table with ``seed`` and ``example_id``
columns.

A *configuration* is ``(activation, rank, resolved parameters)``; trials that share it are grouped.

Trials that hold no result are left out of both tables and counted in ``Records.left_out``, each
kind with a statement in ``Records.notes``: queued trials (WAITING: not run yet), running trials
that have not recorded their configuration yet, and trials that failed for a reason that is not
their configuration's (an error, an interrupt, a dead worker, a surplus or duplicate trial, a
wrong setup) once another trial repeats them (their retry stands for them). An ``error``/
``config`` failure not retried yet stays as a FAIL trial without runs (its partial seeds are no
measurement of the configuration). A failure of the configuration itself (``diverged``,
``nonfinite``) is a result and stays whole.
Whatever is missing (an older record without ``seed_metrics``, a trial without ``role``) is
inferred where it safely can be and otherwise left empty, and every such inference is written to
``Records.notes`` so the report can say it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from loran_search import record as R
from loran_search.analysis.fmt import format_value, number
from loran_search.analysis.model import MECHANISM_FIELDS, RUN_COLUMNS, TRIAL_COLUMNS, Records
from loran_search.words import count, plural

if TYPE_CHECKING:
    import optuna

_DIVERGENCE_WORDS = ("diverg", "nan", "inf", "overflow", "exploded")

#: The gain the power statement is about when the study names none (one accuracy point).
DEFAULT_TARGET_GAIN = 0.01
#: Roles of the confirmation trials (kept out of every search table).
CONFIRM_ROLES = R.CONFIRM_ROLES
#: The continuous companion of a task's metric, as ``seed_metrics`` and ``examples`` name it:
#: ``(seed-metric name, example column, +1 if higher is better else -1)``.
COMPANIONS = (("gold_logprob_mean", "gold_logprob", 1.0), ("summary_loss", "loss", -1.0))
#: The per-example column whose mean is the study metric.
EXAMPLE_COLUMN = {
    "accuracy": "correct",
    "rouge1": "rouge1",
    "rouge2": "rouge2",
    "rougeL": "rougeL",
    "rouge_l": "rougeL",
    "gold_logprob_mean": "gold_logprob",
    "summary_loss": "loss",
    "mean_return": "return",  # a control task: per-episode returns, paired by episode seed
}


def _round_key(value: float) -> float:
    """Round to 10 significant digits so that values that went through JSON still group."""
    if isinstance(value, str):  # a peer method's categorical setting (issue 13)
        return value
    if not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.10g}")


def config_label(activation: str, rank: Any, params: dict[str, float]) -> str:
    """The display name of a configuration: ``sinter(amplitude=0.001, frequency=10000) r=8``."""
    inner = ", ".join(f"{k}={format_value(v)}" for k, v in sorted(params.items()))
    rank_s = "?" if rank is None or (isinstance(rank, float) and math.isnan(rank)) else rank
    return f"{activation}({inner}) r={rank_s}"


def seed_order(seed: str) -> tuple[int, Any]:
    """Sort key of a seed as the tables hold it (a string): numbers in order, then the rest."""
    try:
        return (0, int(seed))
    except ValueError:
        return (1, seed)


def _registry_family_and_params(
    activation: str, raw: dict[str, float]
) -> tuple[str | None, dict[str, float] | None]:
    """Family and fully resolved parameters from the registry, or ``(None, None)`` if unknown."""
    try:
        from loran_search.activations import get_spec

        spec = get_spec(activation)
    except Exception:
        return None, None
    try:
        resolved = {k: float(v) for k, v in spec.resolve(**raw).items()}
    except Exception:
        resolved = None
    return spec.family, resolved


def _study_metric(attrs: R.StudyAttrs, seed_metric_keys: Counter[str]) -> tuple[str, list[str]]:
    notes: list[str] = []
    metric = attrs.metric or attrs.setup.get("metric")
    if isinstance(metric, str) and metric:
        if seed_metric_keys and metric not in seed_metric_keys:
            notes.append(
                f"The study names metric '{metric}' but no seed_metrics hold it "
                f"(found: {', '.join(sorted(seed_metric_keys))})."
            )
        return metric, notes
    if not seed_metric_keys:
        notes.append(
            "No trial has seed_metrics (older record): the trial value is used as the metric."
        )
        return "value", notes
    if len(seed_metric_keys) == 1:
        return next(iter(seed_metric_keys)), notes
    metric = seed_metric_keys.most_common(1)[0][0]
    notes.append(
        f"The study does not name its metric (study user_attr 'metric') and seed_metrics hold "
        f"several ({', '.join(sorted(seed_metric_keys))}); '{metric}', the most frequent, is "
        "analysed."
    )
    return metric, notes


def _study_direction(study: optuna.Study, attrs: R.StudyAttrs) -> str:
    direction = attrs.direction or attrs.setup.get("directions")
    if isinstance(direction, list) and direction:
        direction = direction[0]
    if direction in ("maximize", "minimize"):
        return str(direction)
    return "minimize" if study.directions[0].name == "MINIMIZE" else "maximize"


def load_records(study: optuna.Study) -> Records:
    """Read every trial of ``study`` into :class:`Records`.

    Args:
        study: A loaded Optuna study following (or older than) the DESIGN.md trial record.

    Returns:
        The tidy tables; ``notes`` lists every inference made about missing data.
    """
    records = [R.TrialRecord.from_frozen(t) for t in study.get_trials(deepcopy=False)]
    keys: Counter[str] = Counter()
    for r in records:
        for per_seed in (r.seed_metrics or {}).values():
            if isinstance(per_seed, dict):
                keys.update(k for k, v in per_seed.items() if not isinstance(v, (dict, list)))
    companion = next((n for n, _, _ in COMPANIONS if n in keys), None)
    for name, _, _ in COMPANIONS:  # a companion is never the metric unless the study says so
        if keys and set(keys) != {name}:
            keys.pop(name, None)
    attrs = R.StudyAttrs.of(study.user_attrs)
    metric, notes = _study_metric(attrs, keys)
    direction = _study_direction(study, attrs)

    phases: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
        "search": ([], []),
        "confirm": ([], []),
    }
    histories: dict[int, dict[str, list[dict[str, Any]]]] = {}
    examples: dict[int, dict[str, dict[str, list[Any]]]] = {}
    param_names: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    left_out: Counter[str] = Counter()
    left_baselines: dict[Any, str] = {}

    retried = {n for r in records for n in r.retry_history}
    for r in records:
        state = r.state
        why_out = _left_out(r, retried)
        if why_out is not None:
            left_out[why_out] += 1
            continue
        if r.role == R.ROLE_TUNE:  # study.tune: read by analysis.tuning, not a search trial
            continue
        confirm = r.role in CONFIRM_ROLES
        trial_rows, run_rows = phases["confirm" if confirm else "search"]
        pending = state == "FAIL" and r.failure_kind in (R.FAIL_ERROR, R.FAIL_CONFIG)
        if pending:
            counts[f"pending_{r.failure_kind}"] += 1
            if r.role == R.ROLE_BASELINE:
                left_baselines[r.rank] = r.failure or str(r.failure_kind)
        spec = r.activation_spec or {}
        activation = r.activation
        if activation is None:
            counts["no_activation"] += 1
            activation = "unknown"
        raw = {
            k.split(".", 1)[1]: number(v)
            for k, v in r.params.items()
            if isinstance(k, str) and k.startswith(f"{activation}.")
        }
        family = spec.get("family")
        params: dict[str, float]
        if isinstance(spec.get("params"), dict):
            params = {
                str(k): v if isinstance(v, str) else number(v) for k, v in spec["params"].items()
            }
        else:
            counts["no_spec"] += 1
            reg_family, resolved = _registry_family_and_params(activation, raw)
            family = family or reg_family
            params = resolved if resolved is not None else raw
        if family is None:
            family = _registry_family_and_params(activation, {})[0] or "unknown"
        rank = r.rank
        role = r.role
        if role not in R.ROLES:
            counts["no_role"] += 1
            role = R.ROLE_BASELINE if activation == R.BASELINE_ACTIVATION else R.ROLE_CANDIDATE
        version = r.record_version
        if version is None:
            counts["old_version"] += 1
        cost = r.cost
        failure = r.failure
        params_key = tuple(sorted((k, _round_key(v)) for k, v in params.items()))
        key = (activation, rank, params_key)
        if not confirm:
            param_names.setdefault(activation, set()).update(params)

        row: dict[str, Any] = {
            "trial": r.number,
            "state": state,
            "role": role,
            "activation": activation,
            "family": str(family),
            "rank": rank,
            "key": key,
            "config": config_label(activation, rank, dict(params_key)),
            "params": dict(params_key),
            "value": number(r.value) if r.value is not None else math.nan,
            "failure": failure,
            "failure_kind": r.failure_kind,
            "record_version": version,
            "train_seconds": number(cost.get("train_seconds")),
            "peak_memory_mb": number(cost.get("peak_memory_mb")),
            "trainable_params": number(cost.get("trainable_params")),
            "adapter_rank": number(cost.get("adapter_rank")),  # a peer arm's trained rank
            "eval_split": r.eval_split,
            "confirm_of": tuple(r.confirm_of),
        }
        trial_rows.append(row)

        if r.history is not None:
            histories[r.number] = r.history
        if r.examples:
            examples[r.number] = r.examples
        mechanism = {str(k): v for k, v in r.mechanism.items() if isinstance(v, Mapping)}

        base = {k: row[k] for k in ("trial", "state", "role", "activation", "family", "rank")}
        base.update(key=key, config=row["config"])
        if pending:
            continue  # a failed run of the training function, not of the configuration
        seed_metrics = r.seed_metrics
        stability = r.stability
        seeds: list[str | None] = [str(s) for s in seed_metrics] if seed_metrics else []
        seeds += [str(s) for s in stability if str(s) not in seeds]
        seeds += [s for s in mechanism if s not in seeds]
        value_run: str | None = None  # seed of the one run an older record's value stands for
        # refused before training (predicted inert, or screened by the form audit): nothing to read
        untrained = r.failure_kind in (R.FAIL_INERT, R.FAIL_SCREENED)
        if seed_metrics is None and state in ("COMPLETE", "FAIL", "PRUNED") and not untrained:
            counts["no_seed_metrics"] += 1
            if state == "COMPLETE":
                value_run = None if r.seed is None else str(r.seed)
                if value_run not in seeds:
                    seeds.append(value_run)
        first_run = len(run_rows)
        for seed in seeds:
            comp_value = math.nan
            if seed_metrics is not None:
                per_metrics = seed_metrics.get(seed)
                value = (
                    number(per_metrics.get(metric)) if isinstance(per_metrics, dict) else math.nan
                )
                if isinstance(per_metrics, dict):
                    comp_value = next(
                        (number(per_metrics[n]) for n, _, _ in COMPANIONS if n in per_metrics),
                        math.nan,
                    )
            else:
                per_metrics = None
                value = row["value"] if state == "COMPLETE" and seed == value_run else math.nan
            if state == "COMPLETE" and not math.isfinite(value) and _measured(per_metrics, metric):
                counts["nonfinite_metric"] += 1
            stab = stability.get(seed) if seed is not None else None
            has_stab = isinstance(stab, dict)
            stab = stab if isinstance(stab, dict) else {}
            diverged = stab.get("diverged")
            mech = mechanism.get(seed, {}) if seed is not None else {}
            inert = mech.get("inert")
            run_rows.append(
                {
                    **base,
                    "seed": seed,
                    "metric": value,
                    "companion": comp_value,
                    "has_stability": has_stab,
                    "diverged": bool(diverged) if diverged is not None else None,
                    "grad_norm_max": number(stab.get("grad_norm_max")),
                    "loss_spikes": number(stab.get("loss_spikes")),
                    "final_train_loss": number(stab.get("final_train_loss")),
                    **{col: number(mech.get(name)) for col, name in MECHANISM_FIELDS.items()},
                    "inert": bool(inert) if isinstance(inert, (bool, int)) else None,
                }
            )
        # A trial that failed because training diverged, without a per-seed flag saying so.
        if state in ("FAIL", "PRUNED") and failure:
            text = str(failure).lower()
            flagged = any(
                bool((stability.get(s) or {}).get("diverged"))
                for s in stability
                if isinstance(stability.get(s), dict)
            )
            if r.failure_kind == R.FAIL_NONFINITE:
                counts["nonfinite_failure"] += 1
            by_kind = r.failure_kind in (R.FAIL_DIVERGED, R.FAIL_NONFINITE)
            by_words = r.failure_kind is None and any(w in text for w in _DIVERGENCE_WORDS)
            own = [row for row in run_rows[first_run:] if row["seed"] is not None]
            if (by_kind or by_words) and not flagged and own:
                # the failure says a run diverged, the per-seed flags say none did: the run is one
                # of this trial's (the last trained; counted once per (trial, seed)), not another
                last = next((row for row in reversed(own) if row["has_stability"]), own[-1])
                last.update(diverged=True, has_stability=True)
                counts["divergence_flag_disagrees"] += 1
            elif (by_kind or by_words) and not flagged:
                run_rows.append(
                    {
                        **base,
                        "seed": None,
                        "metric": math.nan,
                        "companion": math.nan,
                        "has_stability": True,
                        "diverged": True,
                        "grad_norm_max": math.nan,
                        "loss_spikes": math.nan,
                        "final_train_loss": math.nan,
                        **{col: math.nan for col in MECHANISM_FIELDS},
                        "inert": None,
                    }
                )
                counts["divergence_from_failure"] += 1

    trial_rows, run_rows = phases["search"]
    done_ranks = {
        row["rank"]
        for row in trial_rows
        if row["role"] == R.ROLE_BASELINE and row["state"] == "COMPLETE"
    }
    missing = {k: v for k, v in left_baselines.items() if k not in done_ranks}
    notes += _left_out_notes(left_out, missing)
    if counts["pending_error"] or counts["pending_config"]:
        n = counts["pending_error"] + counts["pending_config"]
        notes.append(
            f"{count(n, 'trial')} failed with an error (the training raised: a missing file, "
            "out of memory, a bug), not because of the configuration; "
            f"{plural(n, 'it counts as a failed trial', 'they count as failed trials')} without "
            "runs, and running the study command again (once the cause is fixed) retries "
            f"{plural(n, 'it', 'them')}."
        )
    if counts["nonfinite_failure"]:
        notes.append(
            f"{count(counts['nonfinite_failure'], 'trial')} failed because a seed's {metric} "
            "was NaN or "
            "infinite (failure kind 'nonfinite'); each counts as one diverged run, like a "
            "divergence, and enters no mean or gain."
        )
    if counts["nonfinite_metric"]:
        notes.append(
            f"{count(counts['nonfinite_metric'], 'run')} of completed trials "
            f"{plural(counts['nonfinite_metric'], 'reports', 'report')} a non-finite "
            f"{metric} (NaN or infinite, older records); they are left out of metric means and "
            "gains."
        )
    if counts["old_version"]:
        notes.append(
            f"{count(counts['old_version'], 'trial')} "
            f"{plural(counts['old_version'], 'carries', 'carry')} no record_version (older "
            "records); missing "
            "fields were inferred where possible and left empty otherwise."
        )
    if counts["no_seed_metrics"] and metric != "value":
        notes.append(
            f"{count(counts['no_seed_metrics'], 'finished trial')} "
            f"{plural(counts['no_seed_metrics'], 'has')} no seed_metrics; the trial "
            "value is used as one run (seed from user_attr 'seed', else unknown; a run of unknown "
            "seed enters metric means, never paired gains)."
        )
    if counts["no_role"]:
        notes.append(
            f"{count(counts['no_role'], 'trial')} {plural(counts['no_role'], 'has')} no role; "
            "'identity' trials were taken as the "
            "baseline, all others as candidates."
        )
    if counts["no_spec"]:
        notes.append(
            f"{count(counts['no_spec'], 'trial')} {plural(counts['no_spec'], 'has')} no "
            "activation_spec; parameters were resolved from "
            "the trial params and the registry's defaults."
        )
    if counts["no_activation"]:
        n_act = counts["no_activation"]
        notes.append(
            f"{count(n_act, 'trial')} {plural(n_act, 'names', 'name')} no activation ('unknown')."
        )
    if counts["divergence_from_failure"]:
        notes.append(
            f"{count(counts['divergence_from_failure'], 'failed/pruned trial')} "
            f"{plural(counts['divergence_from_failure'], 'reports', 'report')} divergence only in "
            "the failure reason; each counts as one diverged run of unknown seed."
        )

    if counts["divergence_flag_disagrees"]:
        notes.append(
            f"{count(counts['divergence_flag_disagrees'], 'failed trial')} "
            f"{plural(counts['divergence_flag_disagrees'], 'reports', 'report')} divergence in "
            "their failure while their per-seed stability flags disagree (none diverged); the last "
            "seed run of each is counted as the diverged run, once (runs are counted once per "
            "trial and seed)."
        )

    trials, runs = _frames(*phases["search"])
    confirm_trials, confirm_runs = _frames(*phases["confirm"])
    eval_size = attrs.section("task").get("eval_size")
    target, target_note = _target_gain(attrs)
    if target_note:
        notes.append(target_note)
    return Records(
        study_name=study.study_name,
        eval_size=int(eval_size) if isinstance(eval_size, (int, float)) and eval_size > 0 else None,
        metric=metric,
        direction=direction,
        trials=trials,
        runs=runs,
        histories=histories,
        param_names={k: sorted(v) for k, v in param_names.items()},
        notes=notes,
        left_out=dict(left_out),
        confirm_trials=confirm_trials,
        confirm_runs=confirm_runs,
        examples=examples,
        target_gain=target,
        companion=companion,
        visited_bound=R.visited_bound(records),
    )


def _frames(
    trial_rows: list[dict[str, Any]], run_rows: list[dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``trials`` and ``runs`` frames of one phase (ranks as ints, seeds as strings)."""
    trials = pd.DataFrame(trial_rows, columns=TRIAL_COLUMNS)
    runs = pd.DataFrame(run_rows, columns=RUN_COLUMNS)
    # one row per run: a (trial, seed) pair met twice in inconsistent records counts once
    keep = ~runs.duplicated(subset=["trial", "seed"], keep="first").to_numpy(dtype=bool)
    run_rows = [r for r, k in zip(run_rows, keep, strict=True) if k]
    runs = runs[keep].reset_index(drop=True)
    # Keep ranks as Python ints (None when unknown) and seeds as strings, never floats.
    for df, src in ((trials, trial_rows), (runs, run_rows)):
        df["rank"] = pd.Series([r["rank"] for r in src], index=df.index, dtype=object)
    runs["seed"] = pd.Series([r["seed"] for r in run_rows], index=runs.index, dtype=object)
    for col in ("eval_split", "failure_kind", "confirm_of"):
        trials[col] = pd.Series([r[col] for r in trial_rows], index=trials.index, dtype=object)
    runs["inert"] = pd.Series([r["inert"] for r in run_rows], index=runs.index, dtype=object)
    return trials, runs


def _target_gain(attrs: R.StudyAttrs) -> tuple[float, str | None]:
    """``report.target_gain`` from the study attrs or the setup, else the default."""
    for value in attrs.target_gains:
        if value is None:
            continue
        gain = number(value)
        if math.isfinite(gain) and gain != 0.0:
            return abs(gain), None
        return DEFAULT_TARGET_GAIN, (
            f"report.target_gain = {value!r} is not a non-zero number; the power statement uses "
            f"{DEFAULT_TARGET_GAIN}."
        )
    return DEFAULT_TARGET_GAIN, None


def examples_frame(examples: Mapping[str, Mapping[str, list[Any]]]) -> pd.DataFrame:
    """One trial's per-example outcomes as a tidy table.

    Args:
        examples: ``{seed: {"id": [...], column: [...]}}``
            (:attr:`loran_search.record.TrialRecord.examples`).

    Returns:
        Columns ``seed`` (str), ``example_id`` (str), then the value columns in their recorded
        order; one row per (seed, example). A seed whose columns are not all as long as its ids
        is left out (a malformed record), as are its columns.
    """
    frames = []
    columns: list[str] = []
    for seed, cols in examples.items():
        ids = cols.get("id")
        if not isinstance(ids, list) or not ids:
            continue
        if any(len(v) != len(ids) for v in cols.values()):
            continue
        data = {"seed": [str(seed)] * len(ids), "example_id": [str(i) for i in ids]}
        for col, vals in cols.items():
            if col != "id":
                data[col] = vals
                if col not in columns:
                    columns.append(col)
        frames.append(pd.DataFrame(data))
    if not frames:
        return pd.DataFrame(columns=["seed", "example_id", *columns])
    out = pd.concat(frames, ignore_index=True)
    return out[["seed", "example_id", *columns]]


def _measured(per_metrics: Any, metric: str) -> bool:
    return isinstance(per_metrics, dict) and metric in per_metrics


def _left_out(r: R.TrialRecord, retried: set[int]) -> str | None:
    """Why a trial holds no result (``queued``, ``running``, a failure kind), else ``None``."""
    if r.state == "WAITING":
        return "queued"
    if r.state == "RUNNING" and r.activation is None:
        return "running"
    if r.duplicate_of is not None:  # a repeat form proposal, answered from its twin's record
        return "duplicate"
    kind = r.failure_kind
    if r.state != "FAIL" or kind is None or kind in R.CONFIGURATION_FAILURES:
        return None
    if kind in R.STOPPED_EARLY or r.number in retried or r.activation is None:
        return kind
    return None  # an error not retried yet: kept as a FAIL trial without runs


_SINGULAR = {"are": "is", "have": "has", "were": "was", "their": "its"}
_LEFT_OUT_WHY = {
    "queued": "are queued and have not run yet; run the study command again to run them",
    "running": "are running and have not recorded their configuration yet",
    R.FAIL_ERROR: "failed with an error (the training raised), not because of their "
    "configuration, and were queued again",
    R.FAIL_INTERRUPTED: "were interrupted (Ctrl-C, SIGTERM) and queued again",
    R.FAIL_STALE: "were left running by a worker that died and were queued again",
    R.FAIL_SURPLUS: "were taken after n_trials was full (or were a duplicate retry) and never ran",
    R.FAIL_CONFIG: "stopped the study because its setup was wrong and were queued again",
    "duplicate": "repeated a form already proposed (same canonical formula and parameter "
    "values) and were answered from that trial's record, not trained",
}


def _left_out_notes(left_out: Counter[str], left_baselines: dict[Any, str]) -> list[str]:
    notes = []
    for why, n in sorted(left_out.items()):
        text = _LEFT_OUT_WHY.get(why, f"failed ({why}) and were queued again")
        if n == 1:  # the texts are written for several trials: the verbs in the singular
            text = re.sub(r"\b(are|have|were|their)\b", lambda m: _SINGULAR[m.group(1)], text)
        notes.append(
            f"{count(n, 'trial')} {text}; {plural(n, 'it is', 'they are')} left out of the tables."
        )
    for rank, failure in sorted(left_baselines.items(), key=lambda kv: str(kv[0])):
        notes.append(
            f"The baseline at rank {rank} has not completed (its trial: {failure}); gains at "
            f"rank {rank} are unavailable until the study command runs it again."
        )
    return notes
