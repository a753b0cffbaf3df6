"""One trial: train the sampled configuration once per seed and write the trial record.

The record's keys, roles and version are :mod:`loran_search.record`'s (the contract of
DESIGN.md); this module writes them with :func:`loran_search.record.to_user_attrs`, seed by seed,
so a trial that fails keeps what it measured.

The value is the mean of ``study.metric`` over the seeds, ``v̄ = (1/S)·Σ_s v_s``; a
multi-objective study returns ``[v̄, cost[o] for o in study.objectives]``.

Intermediate values (for pruning): seeds run one after another and each run reports its
evaluations at step ``i·max_steps + step`` for the ``i``-th seed. All trials use the same seeds in
the same order, so a pruner compares trials at the same seed *and* step (a paired comparison);
``mean over seeds so far`` would mix seeds across trials.

**The training-function seam.** The training function is
:func:`loran_search.train.run_training`; ``LORAN_SEARCH_TRAIN_FN=module:function`` (or
``path/to/file.py:function``) substitutes another. It is called once per seed as::

    train_fn(cfg, activation=NAME, activation_params={param: value}, rank=R, seed=S,
             training_overrides={key: value}, on_eval=CALLBACK, adapter_dir=PATH_OR_NONE,
             progress=BOOL, eval_split=SPLIT)

A peer arm's trial (``search.methods``, issue 13) also passes ``method=NAME,
method_params={setting: value}, match=rank|params`` (with ``activation="identity"``, unused);
a LoRAN trial never passes them, so a substitute that knows no peers still runs LoRAN studies.

``eval_split`` is ``task.eval_split`` for search trials and ``study.confirm.split`` for
confirmation trials; a function without an ``eval_split`` parameter (nor ``**kwargs``) is called
without it, which is fine for the search and refused (``TrainFnError``) for a confirmation,
since it could not evaluate on the held-out split. It returns a mapping or an object with
``status`` (``"completed"``/``"diverged"``; default ``completed``), ``metrics`` (``{name:
number}``, must hold ``study.metric`` when completed), ``stability``, ``cost`` (mappings),
``history`` (a list of mappings), ``zero_shot`` (a mapping or ``None``), ``adapter_path`` (a
path or ``None``), ``eval_split`` (the split it evaluated; when given it must be the one asked
for), ``examples`` (a list of per-example mappings, each with a stable ``id``) and
``mechanism`` (a mapping: ``RunResult.mechanism``); every key is optional. :class:`RunOutcome`
reads it once, at the seam, and names the function and the key when something is unusable.

**What a trial records per seed** (:mod:`loran_search.record`): ``seed_metrics``,
``stability``, ``history``, ``cost``, ``mechanism[seed]`` (``layers`` dropped), the outcomes
``examples.<seed>`` (columns, split into parts above 60,000 characters) and ``eval_split``.

**Confirmation trials** (roles ``confirm`` / ``confirm_baseline``, :mod:`.confirm`) run the same
way on the confirmation seeds and split, never report intermediate values (no pruning; nothing
for the pruner to compare with search trials) and keep no adapter.

**Forms** (``search.forms``, :mod:`loran_search.search.screening`). A form trial is screened and
looked up before anything is built (:func:`_form_step`): a refused form is PRUNED ``screened:``
untrained, a repeat proposal is answered from its twin; the others train like any activation.

**Inert candidates.** Given :class:`InertCheck` (the trained baselines' ``p_quantiles``), a
candidate's ``ν̂`` (:func:`loran_search.train.predict_nonlinearity_from_quantiles` at the
baseline's ``P`` of its rank, the mean over the baseline's seeds) is recorded as
``predicted_nonlinearity`` right after its params are known and before any training; below
``INERT_THRESHOLD`` it is said, and with ``search.skip_inert`` the trial fails ``inert:`` there,
untrained.
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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.errors import LoranSearchError
from loran_search.search.progress import phase_of
from loran_search.words import plural

if TYPE_CHECKING:
    import optuna

    from loran_search.config import StudyConfig
    from loran_search.search.space import SearchSpace

TRAIN_FN_ENV = "LORAN_SEARCH_TRAIN_FN"
RUN_STATUSES = ("completed", "diverged")
RESULT_KEYS = (
    "status",
    "metrics",
    "stability",
    "cost",
    "history",
    "zero_shot",
    "adapter_path",
    "eval_split",
    "examples",
    "mechanism",
)

TrainFn = Callable[..., Any]


class TrialFailed(Exception):
    """The configuration failed (diverged, non-finite); the trial is FAIL, counted, not retried."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class MetricMissing(LoranSearchError):
    """The task produced no ``study.metric``: every trial would fail, so the study stops."""


class TrainFnError(LoranSearchError):
    """The training function cannot be loaded, or it returned something unusable."""


def describe_fn(fn: Any) -> str:
    """``module:qualname`` of a function, for messages."""
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}:{name}"


def get_train_fn() -> TrainFn:
    """The training function: ``$LORAN_SEARCH_TRAIN_FN`` (``module:function``) or the real one.

    Raises:
        TrainFnError: The variable names no importable function.
    """
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
            fn = getattr(mod, func)
        except (ImportError, AttributeError, FileNotFoundError, AssertionError, ValueError) as err:
            raise TrainFnError(
                f"{TRAIN_FN_ENV}={spec!r} cannot be loaded ({type(err).__name__}: {err}).",
                fix="Write module:function or path/to/file.py:function, or unset it to use "
                "loran_search.train.run_training.",
            ) from err
        if not callable(fn):
            raise TrainFnError(
                f"{TRAIN_FN_ENV}={spec!r} names {type(fn).__name__} {func!r}, not a function.",
                fix="Point it at a function (module:function).",
            )
        return fn
    from loran_search.train import run_training

    return run_training


# -- the training function's result ------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    """One training run's result, normalised once at the seam (any mapping or object in).

    Attributes:
        status: ``completed`` or ``diverged``.
        metrics: Final task metrics, ``{name: float}`` (empty when diverged).
        stability: ``{diverged, diverged_at_step, grad_norm_max, loss_spikes,
            final_train_loss}`` (whatever the function reports).
        cost: ``{train_seconds, peak_memory_mb, trainable_params, …}``.
        history: One mapping per logged step (``step, loss, grad_norm, lr`` …).
        zero_shot: Metrics of the unadapted model, when measured.
        adapter_path: Where the adapter was saved, if it was.
        eval_split: The split it evaluated, when the function says (``None``: not said).
        examples: One mapping per evaluation example (``id`` and its values); empty when not
            given.
        mechanism: ``RunResult.mechanism`` (telemetry summary, ``p_quantiles`` …); empty when
            not given.
    """

    status: str = "completed"
    metrics: dict[str, float] = field(default_factory=dict)
    stability: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    zero_shot: dict[str, Any] | None = None
    adapter_path: str | None = None
    eval_split: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    mechanism: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_result(cls, result: Any, *, source: str = "the training function") -> RunOutcome:
        """Read a training function's result: a mapping or an object with the attributes.

        Every key is optional (``status`` defaults to ``completed``, the others to empty);
        present keys must have the documented types.

        Args:
            result: What the function returned (``loran_search.train.RunResult``, a dict, any
                object with the attributes of :data:`RESULT_KEYS`).
            source: The function, for the message (``module:function``).

        Raises:
            TrainFnError: ``result`` is neither, or a key has the wrong type; the message names
                the function and the key.
        """
        if isinstance(result, Mapping):

            def get(name: str) -> Any:
                return result.get(name)
        elif result is not None and any(hasattr(result, k) for k in RESULT_KEYS):

            def get(name: str) -> Any:
                return getattr(result, name, None)
        else:
            raise TrainFnError(
                f"The training function {source} returned {_show(result)}; it must return a "
                f"mapping or an object with {', '.join(RESULT_KEYS)} (at least status and "
                "metrics).",
                fix="Return loran_search.train.RunResult or a dict with those keys.",
            )

        def bad(key: str, want: str, value: Any) -> TrainFnError:
            return TrainFnError(
                f"The training function {source} returned {key} = {_show(value)}; {key} must "
                f"be {want}.",
                fix="Fix the function's result (see README, 'the training-function seam').",
            )

        status = get("status")
        if status is None:
            status = "completed"
        if status not in RUN_STATUSES:
            raise bad("status", " or ".join(repr(s) for s in RUN_STATUSES), status)
        metrics: dict[str, float] = {}
        raw_metrics = get("metrics")
        if raw_metrics is not None:
            if not isinstance(raw_metrics, Mapping):
                raise bad("metrics", "a mapping {name: number}", raw_metrics)
            for k, v in raw_metrics.items():
                if isinstance(v, (str, bytes, bytearray)):  # "0.7" would float() silently
                    raise bad(f"metrics[{k!r}]", "a number, not text", v)
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    try:
                        v = float(v)  # numpy and torch scalars
                    except (TypeError, ValueError):
                        raise bad(f"metrics[{k!r}]", "a number", v) from None
                metrics[str(k)] = float(v)
        mappings: dict[str, dict[str, Any]] = {}
        for key in ("stability", "cost"):
            value = get(key)
            if value is not None and not isinstance(value, Mapping):
                raise bad(key, "a mapping", value)
            mappings[key] = dict(value or {})
        zero_shot = get("zero_shot")
        if zero_shot is not None and not isinstance(zero_shot, Mapping):
            raise bad("zero_shot", "a mapping of metrics or None", zero_shot)
        history = get("history")
        if history is not None and (
            isinstance(history, (str, bytes, Mapping))
            or not all(isinstance(h, Mapping) for h in history)
        ):
            raise bad("history", "a list of mappings (one per logged step)", history)
        path = get("adapter_path")
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise bad("adapter_path", "a path (str) or None", path)
        split = get("eval_split")
        if split is not None and not isinstance(split, str):
            raise bad("eval_split", "a split name (str) or None", split)
        examples = get("examples")
        if examples is not None and (
            isinstance(examples, (str, bytes, Mapping))
            or not all(isinstance(e, Mapping) for e in examples)
        ):
            raise bad("examples", "a list of mappings (one per evaluation example)", examples)
        mechanism = get("mechanism")
        if mechanism is not None and not isinstance(mechanism, Mapping):
            raise bad("mechanism", "a mapping (RunResult.mechanism)", mechanism)
        return cls(
            status=str(status),
            metrics=metrics,
            stability=mappings["stability"],
            cost=mappings["cost"],
            history=[dict(h) for h in history or []],
            zero_shot=dict(zero_shot) if zero_shot else None,
            adapter_path=str(path) if path else None,
            eval_split=split or None,
            examples=[dict(e) for e in examples or []],
            mechanism=dict(mechanism or {}),
        )


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'…' if len(text) > 80 else ''}"


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
    for key in ("adapter_rank", "loran_trainable_params"):  # a peer arm's (issue 13)
        if costs and costs[0].get(key) is not None:
            out[key] = costs[0][key]
    return out


def _set(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    for k, v in attrs.items():
        trial.set_user_attr(k, v)


def accepts_eval_split(train_fn: TrainFn) -> bool:
    """Whether the function takes ``eval_split=`` (a parameter of that name, or ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(train_fn).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: assume the documented seam
        return True
    return any(p.name == "eval_split" or p.kind == p.VAR_KEYWORD for p in params)


def _no_exit(train_fn: TrainFn, source: str, *args: Any, **kwargs: Any) -> Any:
    """``train_fn(*args, **kwargs)``, with a ``SystemExit`` it raises turned into TrainFnError.

    ``sys.exit()`` (or argparse refusing the search's own command line) inside the training
    function raised ``SystemExit``, which no ``except Exception`` catches: ``run`` exited 0 with
    no message and left the trial RUNNING. It is a setup error of the function (every trial
    would do the same), so the worker records the trial FAIL and queued again, and stops.
    """
    try:
        return train_fn(*args, **kwargs)
    except SystemExit as err:
        code = err.code
        raise TrainFnError(
            f"The training function {source} called sys.exit({code!r}) (SystemExit) instead "
            "of returning a result: a script's argparse (it parsed the search's own command "
            "line) or an exit() reached from the function the search calls.",
            fix="Make the function return its result (or raise an exception) and keep "
            'argument parsing and sys.exit under `if __name__ == "__main__":`; then run the '
            "same command again: the trial is queued again, nothing is lost.",
        ) from None


def call_train_fn(
    train_fn: TrainFn, cfg: StudyConfig, *, eval_split: str | None = None, **kwargs: Any
) -> RunOutcome:
    """Call the training function with the seam's keyword arguments; normalise its result.

    The call is ``train_fn(cfg, activation=…, activation_params=…, rank=…, seed=…,
    training_overrides=…, on_eval=…, adapter_dir=…, progress=…, eval_split=…)``; a function
    that takes no ``eval_split`` is called without it when the split is ``task.eval_split``.

    Raises:
        TrainFnError: The function takes no ``eval_split`` but another split is asked for, or
            it reports having evaluated another split than the one asked for.
    """
    source = describe_fn(train_fn)
    split = eval_split or cfg.task.eval_split
    if accepts_eval_split(train_fn):
        result = _no_exit(train_fn, source, cfg, eval_split=split, **kwargs)
    elif split == cfg.task.eval_split:
        result = _no_exit(train_fn, source, cfg, **kwargs)
    else:
        raise TrainFnError(
            f"The training function {source} takes no eval_split argument, so it cannot "
            f"evaluate on the confirmation split {split!r} (task.eval_split is "
            f"{cfg.task.eval_split!r}).",
            fix="Add an eval_split=None keyword to the function (see README, 'the "
            "training-function seam'), or set study.confirm: false / run with --no-confirm.",
        )
    run = RunOutcome.from_result(result, source=source)
    if run.eval_split is not None and run.eval_split != split:
        raise TrainFnError(
            f"The training function {source} was asked to evaluate on {split!r} but reports "
            f"eval_split = {run.eval_split!r}.",
            fix="Evaluate on the eval_split it is given (see README, 'the training-function "
            "seam').",
        )
    return run


# -- predicted non-linearity -------------------------------------------------------------------


@dataclass
class InertCheck:
    """Predict a candidate's non-linearity from the trained baseline at its rank.

    Attributes:
        quantiles: ``{rank: [p_quantiles of each seed of the COMPLETE baseline]}``.
        threshold: ``INERT_THRESHOLD`` (a configuration with ``ν̂`` below it is inert).
        skip: ``search.skip_inert``: fail an inert candidate ``inert:`` before training it.
    """

    quantiles: dict[int, list[list[Any]]]
    threshold: float
    skip: bool = False

    @classmethod
    def from_trials(cls, trials: list[Any], *, skip: bool) -> InertCheck:
        """From a snapshot of the study: the newest COMPLETE baseline of each rank.

        The threshold (and so torch) is imported only once some baseline has quantiles.
        """
        from optuna.trial import TrialState

        quantiles: dict[int, list[list[Any]]] = {}
        for t in trials:
            if t.state != TrialState.COMPLETE or t.user_attrs.get(R.ROLE) != R.ROLE_BASELINE:
                continue
            stored = t.user_attrs.get(R.MECHANISM)
            if not isinstance(stored, Mapping):
                continue
            qs = [
                list(m["p_quantiles"])
                for m in stored.values()
                if isinstance(m, Mapping) and isinstance(m.get("p_quantiles"), list)
            ]
            rank = R.TrialRecord.from_frozen(t).rank
            if qs and rank is not None:
                quantiles[rank] = qs
        if not quantiles:
            return cls({}, math.nan, skip)
        return cls(quantiles, float(R.INERT_THRESHOLD), skip)

    def predict(self, activation: str, params: Mapping[str, Any], rank: int) -> float | None:
        """``ν̂`` (mean over the baseline's seeds), ``None`` without a baseline or a finite value."""
        qs = self.quantiles.get(int(rank))
        if not qs:
            return None
        from loran_search.activations import get_activation
        from loran_search.train import predict_nonlinearity_from_quantiles

        f = get_activation(activation, **dict(params))
        values = [predict_nonlinearity_from_quantiles(q, f) for q in qs]
        finite = [v for v in values if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else None

    def is_inert(self, nu: float | None) -> bool:
        """``ν̂ < threshold``."""
        return nu is not None and nu < self.threshold

    def reason(self, nu: float, rank: int) -> str:
        """The ``failure`` sentence of a skipped inert candidate."""
        return (
            f"predicted ν = {nu:.3g} < threshold {self.threshold:g} at the rank-{rank} "
            "baseline's P: LoRA in all but name, not trained (search.skip_inert)"
        )


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
    confirm: Any | None = None,
    inert: InertCheck | None = None,
    log: Callable[[str], None] | None = None,
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
        confirm: The study's :class:`~loran_search.search.types.ConfirmSetup`; a trial with a
            confirmation role runs on its seeds and split (required for one).
        inert: Predict a candidate's non-linearity before training it (module doc).
        log: Receives the notes of an inert prediction.

    Returns:
        The trial's value (or values for a multi-objective study).

    Raises:
        optuna.TrialPruned: The pruner stopped the trial (from ``on_eval``).
        TrialFailed: A seed diverged (``diverged``) or its metric, or a cost objective, is NaN or
            infinite (``nonfinite``); a candidate predicted inert with ``search.skip_inert``
            (``inert``).
        MetricMissing: ``study.metric`` is not among the task's metrics.
        TrainFnError: The training function returned something unusable.
    """
    from loran_search.activations import get_activation

    tc = space.suggest(trial)
    role = trial.user_attrs.get(R.ROLE) or R.ROLE_CANDIDATE
    confirming = role in R.CONFIRM_ROLES
    if confirming and confirm is None:
        raise TrainFnError(
            f"Trial {trial.number} is a {role} trial but the study has no confirmation setup.",
            fix="Run it with loran-search confirm FILE (or run FILE without --no-confirm).",
        )
    seeds = list(confirm.seeds) if confirming else list(cfg.study.seeds)
    split = confirm.split if confirming else cfg.task.eval_split
    tuning = role == R.ROLE_TUNE  # study.tune (issue 21): search seeds and split, no pruning
    tuned = trial.user_attrs.get(R.TUNED) if tuning or confirming else None
    if tuned:
        from loran_search.search.tune import apply_tuned

        cfg, tc = apply_tuned(cfg, tc, tuned)
    peer = tc.method != R.METHOD_LORAN
    forms = getattr(space, "forms", None)
    is_form = not peer and forms is not None and forms.owns(tc.activation)
    if is_form:  # screened or answered from a twin before anything is built (search.forms)
        answered = _form_step(trial, cfg, forms, tc, role=role, split=split)
        if answered is not None:
            return answered
    bound = None if peer else get_activation(tc.activation, **tc.activation_params)
    spec = peer_spec(tc) if peer else bound.to_dict()  # type: ignore[union-attr]
    if is_form:
        spec["expr"] = forms.form(tc.activation).expr
    _set(
        trial,
        R.to_user_attrs(role=role, activation_spec=spec, eval_split=split, version=True),
    )
    if peer:
        _set(trial, {R.METHOD: peer_attr(tc, space.match)})
    elif getattr(cfg.adapter, "normalize", None) == "slope":
        from loran_search.adapters.normalize import slope_at_zero

        df0 = slope_at_zero(tc.activation, tc.activation_params)
        _set(trial, {R.NORMALIZE: {"mode": "slope", "slope_at_zero": df0}})
    if role == R.ROLE_CANDIDATE and inert is not None and not peer:
        _check_inert(trial, tc, bound, inert, log)
    save = cfg.study.save_adapters
    adapter_dir = None
    if save != "none" and adapters_dir is not None and not confirming and not tuning:
        adapter_dir = adapters_dir / f"trial-{trial.number}"
    try:
        return _train_seeds(
            trial,
            cfg,
            tc,
            bound,
            train_fn,
            artifact_store,
            adapter_dir,
            best_value,
            progress,
            seeds=seeds,
            split=split,
            report=not confirming and not tuning,
            phase=phase_of(role),
        )
    except BaseException:
        # Pruned, failed or interrupted (Ctrl-C, SIGTERM): no half-written adapter folder stays.
        if adapter_dir is not None:
            shutil.rmtree(adapter_dir, ignore_errors=True)
        raise


def _form_step(
    trial: optuna.Trial,
    cfg: StudyConfig,
    forms: Any,
    tc: Any,
    *,
    role: str,
    split: str,
) -> float | list[float] | None:
    """A form trial before training (:func:`loran_search.search.screening.before_training`).

    Records the role and the form's spec (``expr`` included), then screens it and looks for a
    twin: a screened form fails ``screened:`` here, untrained; a repeat proposal is answered
    from its twin (its value, or PRUNED / FAIL as the twin ended). ``None``: train it.

    Raises:
        TrialFailed: Screened (``screened``), or the twin failed (its kind).
        optuna.TrialPruned: The twin was pruned.
    """
    import optuna

    from loran_search.record import FORM_FAMILY
    from loran_search.search.screening import before_training

    spec = {
        "name": tc.activation,
        "family": FORM_FAMILY,
        "params": dict(tc.activation_params),
        "expr": forms.form(tc.activation).expr,
    }
    _set(trial, R.to_user_attrs(role=role, activation_spec=spec, eval_split=split, version=True))
    verdict = before_training(
        trial,
        forms,
        tc.activation,
        tc.activation_params,
        tc.rank,
        tc.training_overrides,
        role=role,
    )
    if verdict is None:
        return None
    if verdict.kind == R.FAIL_SCREENED:  # PRUNED, so that samplers learn to avoid it
        attrs = R.failure_attrs(R.FAIL_SCREENED, verdict.message)
        _set(trial, attrs)
        raise optuna.TrialPruned(attrs[R.FAILURE])
    if verdict.state == "PRUNED":
        raise optuna.TrialPruned(verdict.message)
    if verdict.state == "FAIL":
        raise TrialFailed(str(verdict.failure_kind), verdict.message)
    values = list(verdict.values or [])
    return values if cfg.study.objectives else values[0]


def _check_inert(
    trial: optuna.Trial,
    tc: Any,
    bound: Any,
    inert: InertCheck,
    log: Callable[[str], None] | None,
) -> None:
    """Record ``predicted_nonlinearity``; say an inert one; fail it with ``skip_inert``."""
    nu = inert.predict(tc.activation, dict(bound.params), tc.rank)
    if nu is None:
        return
    _set(trial, R.to_user_attrs(predicted_nonlinearity=nu))
    if not inert.is_inert(nu):
        return
    if inert.skip:
        raise TrialFailed(R.FAIL_INERT, inert.reason(nu, tc.rank))
    if log is not None:
        log(
            f"Trial {trial.number}: {tc.activation} {dict(bound.params)} at rank {tc.rank} is "
            f"predicted inert (ν̂ = {nu:.3g} < {inert.threshold:g}): LoRA in all but name; "
            "training it anyway (search.skip_inert: false)."
        )


def _train_seeds(
    trial: optuna.Trial,
    cfg: StudyConfig,
    tc: Any,
    bound: Any,
    train_fn: TrainFn,
    artifact_store: Any | None,
    adapter_dir: Path | None,
    best_value: float | None,
    progress: bool,
    *,
    seeds: list[int],
    split: str,
    report: bool = True,
    phase: str = "search",
) -> float | list[float]:
    """Every seed of one trial, the record written seed by seed (see :func:`execute_trial`).

    Each run is named ``trial N · PHASE · seed S (i/n)`` (:mod:`loran_search.console`); with
    ``progress`` and no terminal, a line says when each seed finished and the trial's ETA. The
    trial records the environment fingerprint before its first run and again after it (torch is
    loaded then: threads, deterministic setting, device).
    """
    import optuna

    from loran_search.console import RunLabel, emit, is_terminal, run_label, seed_line
    from loran_search.environment import trial_fingerprint

    metric = cfg.study.metric
    multi = bool(cfg.study.objectives)
    max_steps = int(tc.training_overrides.get("max_steps", cfg.training.max_steps))
    save = cfg.study.save_adapters
    own = dict(bound.params) if bound is not None else dict(tc.method_params)
    what = f"{tc.activation} {own} at rank {tc.rank}"
    if tc.training_overrides:
        what += f" with {dict(tc.training_overrides)}"
    seed_metrics: dict[str, dict[str, float]] = {}
    stability: dict[str, dict[str, Any]] = {}
    history: dict[str, list[dict[str, Any]]] = {}
    zero_shot: dict[str, Any] = {}
    mechanism: dict[str, Any] = {}
    costs: list[Mapping[str, Any]] = []
    adapter_path: str | None = None
    env_kw = {"compute_dtype": cfg.model.compute_dtype, "quantization": cfg.model.quantization}
    environment = trial_fingerprint(**env_kw)
    _set(trial, R.to_user_attrs(environment=environment))
    lines = progress and not is_terminal(sys.stderr)
    seed_seconds: list[float] = []

    for i, seed in enumerate(seeds):

        def on_eval(step: int, metrics: dict[str, float], i: int = i, seed: int = seed) -> None:
            value = metrics.get(metric)
            if not report or multi or value is None or not math.isfinite(float(value)):
                return
            trial.report(float(value), i * max_steps + int(step))
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned at seed {seed}, step {step}: {metric} = {float(value):.4g}"
                )

        label = RunLabel(trial=trial.number, phase=phase, seed=seed, index=i + 1, of=len(seeds))
        t0 = time.monotonic()
        with run_label(label):
            run = call_train_fn(
                train_fn,
                cfg,
                activation=tc.activation if bound is not None else R.BASELINE_ACTIVATION,
                activation_params=dict(bound.params) if bound is not None else {},
                rank=tc.rank,
                seed=seed,
                **peer_kwargs(tc, cfg),
                training_overrides=dict(tc.training_overrides),
                on_eval=on_eval,
                adapter_dir=adapter_dir if i == 0 else None,
                progress=progress,
                eval_split=split,
            )
        seed_seconds.append(time.monotonic() - t0)
        if lines:
            emit(seed_line(label, seed_seconds[-1], seed_seconds, run.status))
        if i == 0:  # torch is loaded now: threads, deterministic setting, device
            refreshed = trial_fingerprint(**env_kw)
            if refreshed != environment:
                environment = refreshed
                _set(trial, R.to_user_attrs(environment=environment))
        key = str(seed)
        stability[key] = run.stability
        history[key] = run.history
        costs.append(run.cost)
        if run.zero_shot:
            zero_shot[key] = run.zero_shot
        if i == 0 and run.adapter_path:
            adapter_path = run.adapter_path
        if run.status == "completed":
            seed_metrics[key] = run.metrics
        if run.mechanism:
            mechanism[key] = run.mechanism
        _set(trial, R.examples_attrs(key, run.examples))  # the parts first, their index last
        _set(
            trial,
            R.to_user_attrs(
                seed_metrics=seed_metrics,
                stability=stability,
                history=history,
                cost=aggregate_cost(costs),
                zero_shot=zero_shot,
                mechanism=mechanism or None,
            ),
        )
        if run.status == "diverged":
            at = run.stability.get("diverged_at_step")
            loss = run.stability.get("final_train_loss")
            raise TrialFailed(
                R.FAIL_DIVERGED,
                f"seed {seed} diverged at step {at} (last train loss {loss}); {what} is unstable",
            )
        if metric not in run.metrics:
            raise MetricMissing(
                f"The task produced no metric '{metric}' (it produced: "
                f"{', '.join(sorted(run.metrics)) or 'none'}).",
                fix="Set study.metric to one of them.",
            )
        if not math.isfinite(run.metrics[metric]):
            raise TrialFailed(
                R.FAIL_NONFINITE,
                f"seed {seed}: {metric} = {run.metrics[metric]}; {what} gives no finite result",
            )

    values = [seed_metrics[str(s)][metric] for s in seeds]
    value = sum(values) / len(values)
    cost = aggregate_cost(costs)
    out: float | list[float] = value
    if multi:
        costs_out = {o: float(cost.get(o) or 0.0) for o in cfg.study.objectives}
        bad = {o: v for o, v in costs_out.items() if not math.isfinite(v)}
        if bad:
            raise TrialFailed(
                R.FAIL_NONFINITE,
                f"cost {plural(len(bad), 'objective')} {bad} {plural(len(bad), 'is')} not "
                f"finite; {what}",
            )
        out = [value, *costs_out.values()]

    if artifact_store is not None:
        _upload_metrics(trial, artifact_store, value, seed_metrics, stability, cost)
    keep = save == "all" or (save == "best" and report and _beats(value, best_value, cfg))
    if adapter_path is not None:
        if keep:
            if artifact_store is not None:
                _upload_dir(trial, artifact_store, Path(adapter_path))
            _set(trial, R.to_user_attrs(adapter_path=str(Path(adapter_path).resolve())))
        else:
            shutil.rmtree(adapter_path, ignore_errors=True)
    return out


def peer_spec(tc: Any) -> dict[str, Any]:
    """The ``activation_spec`` of a peer arm's trial: ``{name: <method>, family: method, …}``."""
    return {"name": tc.method, "family": R.METHOD_FAMILY, "params": dict(tc.method_params)}


def peer_attr(tc: Any, match: str) -> dict[str, Any]:
    """The ``method`` user attr of a peer arm's trial (:data:`loran_search.record.METHOD`)."""
    return {"name": tc.method, "rank": tc.rank, "match": match, "params": dict(tc.method_params)}


def peer_kwargs(tc: Any, cfg: StudyConfig) -> dict[str, Any]:
    """The training function's peer keywords (none for LoRAN: substitutes need not know them).

    A peer's call adds ``method=NAME, method_params={setting: value}, match=rank|params``.
    """
    if tc.method == R.METHOD_LORAN:
        return {}
    return {
        "method": tc.method,
        "method_params": dict(tc.method_params),
        "match": cfg.search.match,
    }


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
        R.ROLE: trial.user_attrs.get(R.ROLE),
        R.ACTIVATION_SPEC: trial.user_attrs.get(R.ACTIVATION_SPEC),
        R.SEED_METRICS: seed_metrics,
        R.STABILITY: stability,
        R.COST: cost,
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
