"""One trial: train the sampled configuration once per seed and write the trial record.

The trial record (contract of DESIGN.md; ``record_version`` 1):

* params: ``activation``, ``rank``, ``<activation>.<param>`` per searched parameter,
  ``training.<key>`` per searched training hyperparameter;
* user_attrs: ``role`` (``baseline``/``candidate``), ``activation_spec`` (``{name, family,
  params}`` fully resolved), ``seed_metrics`` (``{"<seed>": {metric: value}}``), ``stability``
  (``{"<seed>": {diverged, diverged_at_step, grad_norm_max, loss_spikes, final_train_loss}}``),
  ``cost`` (``train_seconds`` = mean per run, ``peak_memory_mb`` = max, ``trainable_params``,
  ``train_seconds_total`` = sum over seeds), ``history`` (``{"<seed>": [{step, loss, …}]}``),
  ``zero_shot`` (``{"<seed>": metrics}`` when measured), ``adapter_path`` when an adapter was
  kept, ``record_version``; on failure ``failure`` (a sentence starting with the kind:
  ``diverged:``, ``interrupted:``, ``stale:``, ``error:``, ``surplus:``) and ``failure_kind``.

The value is the mean of ``study.metric`` over the seeds, ``v̄ = (1/S)·Σ_s v_s``; a
multi-objective study returns ``[v̄, cost[o] for o in study.objectives]``.

Intermediate values (for pruning): seeds run one after another and each run reports its
evaluations at step ``i·max_steps + step`` for the ``i``-th seed. All trials use the same seeds in
the same order, so a pruner compares trials at the same seed *and* step (a paired comparison);
``mean over seeds so far`` would mix seeds across trials.

The training function is :func:`loran_search.train.run_training`; the environment variable
``LORAN_SEARCH_TRAIN_FN=module:function`` substitutes another with the same signature (used by
the tests' fake, slow objective and handy for dry runs of a study's mechanics).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from loran_search.config import StudyConfig
    from loran_search.search.space import SearchSpace

RECORD_VERSION = 1
TRAIN_FN_ENV = "LORAN_SEARCH_TRAIN_FN"

TrainFn = Callable[..., Any]


class TrialFailed(Exception):
    """The configuration failed (diverged); the trial is FAIL, counted, the study goes on."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class MetricMissing(Exception):
    """The task produced no ``study.metric``: every trial would fail, so the study stops."""


def get_train_fn() -> TrainFn:
    """The training function: ``$LORAN_SEARCH_TRAIN_FN`` (``module:function``) or the real one."""
    spec = os.environ.get(TRAIN_FN_ENV)
    if spec:
        module, _, func = spec.rpartition(":")
        try:
            if module.endswith(".py"):
                loader_spec = importlib.util.spec_from_file_location("_loran_train_fn", module)
                assert loader_spec is not None and loader_spec.loader is not None
                mod = importlib.util.module_from_spec(loader_spec)
                sys.modules[loader_spec.name] = mod  # dataclasses look their module up
                loader_spec.loader.exec_module(mod)
            else:
                mod = importlib.import_module(module)
            return getattr(mod, func)
        except (ImportError, AttributeError, FileNotFoundError, AssertionError) as err:
            raise RuntimeError(
                f"{TRAIN_FN_ENV}={spec!r} cannot be loaded ({err}); write module:function or "
                "path/to/file.py:function, or unset it to use loran_search.train.run_training."
            ) from err
    from loran_search.train import run_training

    return run_training


def _field(result: Any, name: str, default: Any = None) -> Any:
    if isinstance(result, Mapping):
        return result.get(name, default)
    return getattr(result, name, default)


def aggregate_cost(costs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-trial cost from per-run costs: mean train seconds, max peak memory."""
    secs = [float(c.get("train_seconds", 0.0)) for c in costs]
    mems = [float(c["peak_memory_mb"]) for c in costs if c.get("peak_memory_mb") is not None]
    out: dict[str, Any] = {
        "train_seconds": sum(secs) / len(secs) if secs else 0.0,
        "train_seconds_total": sum(secs),
        "peak_memory_mb": max(mems) if mems else None,
        "trainable_params": costs[0].get("trainable_params") if costs else None,
    }
    return out


def _set(trial: optuna.Trial, **attrs: Any) -> None:
    for k, v in attrs.items():
        trial.set_user_attr(k, v)


def execute_trial(
    trial: optuna.Trial,
    cfg: StudyConfig,
    space: SearchSpace,
    *,
    train_fn: TrainFn,
    artifact_store: Any | None = None,
    adapters_dir: Path | None = None,
    best_value: float | None = None,
    progress: bool = False,
) -> float | list[float]:
    """Train every seed of one trial and record it.

    Args:
        trial: The running trial (enqueued baselines and grid points carry fixed params).
        cfg: The study config.
        space: The study's search space.
        train_fn: ``run_training`` or a substitute with its signature.
        artifact_store: Optuna artifact store for the metrics JSON and adapters.
        adapters_dir: Where adapters are saved (``study.save_adapters`` ``best``/``all``).
        best_value: Best value of the study so far (``save_adapters: best`` keeps this trial's
            adapter only if it beats it).
        progress: Show the per-run progress bar.

    Returns:
        The trial's value (or values for a multi-objective study).

    Raises:
        optuna.TrialPruned: The pruner stopped the trial (from ``on_eval``).
        TrialFailed: A seed diverged.
        MetricMissing: ``study.metric`` is not among the task's metrics.
    """
    import optuna

    from activations import get_activation

    tc = space.suggest(trial)
    role = trial.user_attrs.get("role") or "candidate"
    bound = get_activation(tc.activation, **tc.activation_params)
    _set(trial, role=role, record_version=RECORD_VERSION, activation_spec=bound.to_dict())
    metric = cfg.study.metric
    multi = bool(cfg.study.objectives)
    max_steps = int(tc.training_overrides.get("max_steps", cfg.training.max_steps))
    save = cfg.study.save_adapters
    adapter_dir = None
    if save != "none" and adapters_dir is not None:
        adapter_dir = adapters_dir / f"trial-{trial.number}"
    seed_metrics: dict[str, dict[str, float]] = {}
    stability: dict[str, dict[str, Any]] = {}
    history: dict[str, list[dict[str, Any]]] = {}
    zero_shot: dict[str, Any] = {}
    costs: list[Mapping[str, Any]] = []
    adapter_path: str | None = None

    for i, seed in enumerate(cfg.study.seeds):

        def on_eval(step: int, metrics: dict[str, float], i: int = i, seed: int = seed) -> None:
            value = metrics.get(metric)
            if multi or value is None or not math.isfinite(float(value)):
                return
            trial.report(float(value), i * max_steps + int(step))
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at seed {seed}, step {step}: {metric} = {float(value):.4g}"
                )

        result = train_fn(
            cfg,
            activation=tc.activation,
            activation_params=dict(bound.params),
            rank=tc.rank,
            seed=seed,
            training_overrides=dict(tc.training_overrides),
            on_eval=on_eval,
            adapter_dir=adapter_dir if i == 0 else None,
            progress=progress,
        )
        key = str(seed)
        status = _field(result, "status", "completed")
        metrics = {k: float(v) for k, v in (_field(result, "metrics") or {}).items()}
        stab = dict(_field(result, "stability") or {})
        stability[key] = stab
        history[key] = list(_field(result, "history") or [])
        costs.append(dict(_field(result, "cost") or {}))
        if _field(result, "zero_shot"):
            zero_shot[key] = _field(result, "zero_shot")
        if i == 0 and _field(result, "adapter_path"):
            adapter_path = str(_field(result, "adapter_path"))
        if status == "completed":
            seed_metrics[key] = metrics
        _set(
            trial,
            seed_metrics=seed_metrics,
            stability=stability,
            history=history,
            cost=aggregate_cost(costs),
        )
        if zero_shot:
            _set(trial, zero_shot=zero_shot)
        if status == "diverged":
            at = stab.get("diverged_at_step")
            loss = stab.get("final_train_loss")
            extra = f" with {dict(tc.training_overrides)}" if tc.training_overrides else ""
            raise TrialFailed(
                "diverged",
                f"seed {seed} diverged at step {at} (last train loss {loss}); "
                f"{tc.activation} {dict(bound.params)} at rank {tc.rank}{extra} is unstable",
            )
        if metric not in metrics:
            raise MetricMissing(
                f"The task produced no metric '{metric}' (it produced: "
                f"{', '.join(sorted(metrics)) or 'none'}). Set study.metric to one of them."
            )

    values = [seed_metrics[str(s)][metric] for s in cfg.study.seeds]
    value = sum(values) / len(values)
    cost = aggregate_cost(costs)
    out: float | list[float] = value
    if multi:
        out = [value, *(float(cost.get(o) or 0.0) for o in cfg.study.objectives)]

    if artifact_store is not None:
        _upload_metrics(trial, artifact_store, value, seed_metrics, stability, cost)
    keep = save == "all" or (save == "best" and _beats(value, best_value, cfg))
    if adapter_path is not None:
        if keep:
            if artifact_store is not None:
                _upload_dir(trial, artifact_store, Path(adapter_path))
            _set(trial, adapter_path=str(Path(adapter_path).resolve()))
        else:
            shutil.rmtree(adapter_path, ignore_errors=True)
    return out


def _beats(value: float, best: float | None, cfg: StudyConfig) -> bool:
    if best is None:
        return True
    direction = cfg.study.direction
    d = direction[0] if isinstance(direction, list) else direction
    return value > best if d == "maximize" else value < best


def _upload_metrics(
    trial: optuna.Trial,
    store: Any,
    value: float,
    seed_metrics: dict[str, Any],
    stability: dict[str, Any],
    cost: dict[str, Any],
) -> None:
    from optuna.artifacts import upload_artifact

    record = {
        "trial": trial.number,
        "params": trial.params,
        "value": value,
        "role": trial.user_attrs.get("role"),
        "activation_spec": trial.user_attrs.get("activation_spec"),
        "seed_metrics": seed_metrics,
        "stability": stability,
        "cost": cost,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trial-{trial.number}-metrics.json"
        path.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        upload_artifact(
            artifact_store=store,
            file_path=str(path),
            study_or_trial=trial,
            mimetype="application/json",
        )


def _upload_dir(trial: optuna.Trial, store: Any, directory: Path) -> None:
    """Upload every file of an adapter directory (artifacts are files, not folders)."""
    from optuna.artifacts import upload_artifact

    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
