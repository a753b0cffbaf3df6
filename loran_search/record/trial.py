"""One trial as every reader sees it (:class:`TrialRecord`) and the fates of form proposals.

:meth:`TrialRecord.from_frozen` reads an ``optuna.trial.FrozenTrial`` and tolerates older and
partial records: a missing or ill-typed field reads as ``None`` or empty, never raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loran_search.record.examples import read_examples
from loran_search.record.keys import (
    ACTIVATION_SPEC,
    ADAPTER_PATH,
    CONFIRM_OF,
    COST,
    COUNTED_FAILURES,
    DUPLICATE_OF,
    ENVIRONMENT,
    EVAL_SPLIT,
    FAIL_INERT,
    FAIL_SCREENED,
    FAILURE,
    FAILURE_KIND,
    FORM,
    HEARTBEAT,
    HISTORY,
    LEGACY_ACTIVATION,
    LEGACY_RANK,
    LEGACY_SEED,
    MECHANISM,
    PARAM_ACTIVATION,
    PARAM_RANK,
    PREDICTED_NONLINEARITY,
    PRUNED,
    RECORD_VERSION_KEY,
    RETRY_HISTORY,
    ROLE,
    ROLE_CANDIDATE,
    SEED_METRICS,
    STABILITY,
    WORKER,
    ZERO_SHOT,
)
from loran_search.record.values import _dict, _number, _numbers, _rank, _str, failure_kind_of

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the contract reads it; every field tolerant of older and partial records.

    Attributes:
        number: The trial number.
        state: The Optuna state's name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``,
            ``WAITING``).
        params: The trial params (for a queued trial: the params it was queued with).
        values: The objective values, ``None`` unless COMPLETE.
        role: The recorded role (any non-empty string), ``None`` when absent.
        activation: ``activation_spec.name``, else the ``activation`` param, else the older
            ``activation`` user attr; ``None`` when none is recorded.
        rank: The ``rank`` param (or older user attr) as an int, ``None`` when absent.
        activation_spec: ``{name, family, params}`` when recorded as a mapping.
        seed_metrics: ``{"<seed>": {metric: value}}``; ``None`` when absent (older record).
        stability: ``{"<seed>": {...}}``; empty when absent.
        cost: The cost mapping; empty when absent.
        history: ``{"<seed>": [rows]}`` (rows that are mappings only); ``None`` when absent.
        zero_shot: ``{"<seed>": metrics}`` when measured.
        adapter_path: Where the kept adapter is.
        record_version: The record's version, ``None`` for version-0 records.
        failure: The failure sentence of a failed trial.
        failure_kind: The recorded kind, else the kind the failure sentence starts with.
        pruned: Why the pruner stopped it.
        eval_split: The split it was evaluated on, when recorded.
        mechanism: ``{"<seed>": {nonlinearity_median, …, p_quantiles, nonlinearity_pooled,
            seconds}}``; empty when absent.
        examples: ``{"<seed>": {"id": [...], field: [...]}}`` (parts joined); empty when
            absent.
        confirm_of: A confirmation trial's search trial numbers; ``()`` otherwise.
        predicted_nonlinearity: ``ν̂`` predicted before training (candidates), if it was.
        seed: The older records' single ``seed`` user attr.
        worker: ``{host, pid, start}`` of the process that ran it.
        heartbeat: The journal heartbeat (UNIX time) of a running trial.
        started: When it started (UNIX time), ``None`` for a queued trial.
        retry_history: Numbers of the trials this one repeats (oldest first).
        queued_params: The params it was queued with (``enqueue_trial``/a retry), else ``None``.
        form: A form trial's ``{name, expr, tree, key, interval}`` (:data:`FORM`).
        duplicate_of: The trial a repeat form proposal was answered from (:data:`DUPLICATE_OF`).
        environment: The environment fingerprint (:data:`ENVIRONMENT`); ``None`` in records
            written before it existed.
    """

    number: int
    state: str
    params: dict[str, Any]
    values: tuple[float, ...] | None = None
    role: str | None = None
    activation: str | None = None
    rank: int | None = None
    activation_spec: dict[str, Any] | None = None
    seed_metrics: dict[str, Any] | None = None
    stability: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] | None = None
    zero_shot: dict[str, Any] | None = None
    adapter_path: str | None = None
    record_version: int | None = None
    failure: str | None = None
    failure_kind: str | None = None
    pruned: str | None = None
    eval_split: str | None = None
    mechanism: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    confirm_of: tuple[int, ...] = ()
    predicted_nonlinearity: float | None = None
    seed: Any = None
    worker: dict[str, Any] | None = None
    heartbeat: float | None = None
    started: float | None = None
    retry_history: tuple[int, ...] = ()
    queued_params: dict[str, Any] | None = None
    form: dict[str, Any] | None = None
    duplicate_of: int | None = None
    environment: dict[str, Any] | None = None

    @classmethod
    def from_frozen(
        cls, trial: FrozenTrial, *, queued_params: Mapping[str, Any] | None = None
    ) -> TrialRecord:
        """Read ``trial`` (an ``optuna.trial.FrozenTrial``) into a record.

        Args:
            trial: The stored trial.
            queued_params: The params it was queued with, when the caller knows them (Optuna
                keeps them in a private system attr; :mod:`loran_search.search._optuna` reads
                it). A WAITING trial has no params of its own, so these stand in for them.
        """
        ua = trial.user_attrs
        sa = trial.system_attrs
        params = dict(trial.params)
        queued = dict(queued_params) if queued_params else None
        if not params and queued:
            params = queued
        spec = _dict(ua.get(ACTIVATION_SPEC))
        activation = (
            _str((spec or {}).get("name"))
            or _str(params.get(PARAM_ACTIVATION))
            or _str(ua.get(LEGACY_ACTIVATION))
        )
        rank = _rank(params.get(PARAM_RANK, ua.get(LEGACY_RANK)))
        history = _dict(ua.get(HISTORY))
        if history is not None:
            history = {
                s: [h for h in rows if isinstance(h, Mapping)]
                for s, rows in history.items()
                if isinstance(rows, list)
            }
        version = ua.get(RECORD_VERSION_KEY)
        failure = _str(ua.get(FAILURE))
        kind = _str(ua.get(FAILURE_KIND)) or failure_kind_of(failure)
        retries = sa.get(RETRY_HISTORY)
        beat = sa.get(HEARTBEAT)
        stored = _dict(ua.get(MECHANISM)) or {}
        mechanism = {s: dict(m) for s, m in stored.items() if isinstance(m, Mapping)}
        confirm_of = ua.get(CONFIRM_OF)
        return cls(
            number=int(trial.number),
            state=trial.state.name,
            params=params,
            values=tuple(trial.values) if trial.values is not None else None,
            role=_str(ua.get(ROLE)),
            activation=activation,
            rank=rank,
            activation_spec=spec,
            seed_metrics=_dict(ua.get(SEED_METRICS)),
            stability=_dict(ua.get(STABILITY)) or {},
            cost=_dict(ua.get(COST)) or {},
            history=history,
            zero_shot=_dict(ua.get(ZERO_SHOT)),
            adapter_path=_str(ua.get(ADAPTER_PATH)),
            record_version=int(version) if isinstance(version, int) else None,
            failure=failure,
            failure_kind=kind,
            pruned=_str(ua.get(PRUNED)),
            eval_split=_str(ua.get(EVAL_SPLIT)),
            mechanism=mechanism,
            examples=read_examples(ua),
            confirm_of=_numbers(confirm_of),
            predicted_nonlinearity=_number(ua.get(PREDICTED_NONLINEARITY)),
            seed=ua.get(LEGACY_SEED),
            worker=_dict(sa.get(WORKER)),
            heartbeat=float(beat) if isinstance(beat, (int, float)) else None,
            started=trial.datetime_start.timestamp() if trial.datetime_start else None,
            retry_history=tuple(int(n) for n in retries) if isinstance(retries, list) else (),
            queued_params=queued,
            form=_dict(ua.get(FORM)),
            duplicate_of=_rank(ua.get(DUPLICATE_OF)),
            environment=_dict(ua.get(ENVIRONMENT)),
        )

    def role_or(self, default: str) -> str:
        """The recorded role, or ``default`` when the trial has none."""
        return self.role or default

    @property
    def value(self) -> float | None:
        """The single objective value (``None`` when absent or multi-objective)."""
        return self.values[0] if self.values is not None and len(self.values) == 1 else None

    @property
    def finished(self) -> bool:
        """COMPLETE, PRUNED or FAIL."""
        return self.state in ("COMPLETE", "PRUNED", "FAIL")


def form_counts(records: Iterable[TrialRecord]) -> dict[str, int]:
    """How many candidate form proposals (``search.forms``) ended in each fate.

    A proposal is a ``candidate`` trial with a recorded :data:`FORM` that ended as a result:
    *screened* (refused by the audit before training, failure kind ``screened``),
    *deduplicated* (:data:`DUPLICATE_OF`: answered from a twin), *inert* (predicted inert and
    skipped, ``search.skip_inert``) or *trained* (it reached the training function: COMPLETE,
    pruned by the pruner, or failed as a configuration: diverged, non-finite). Trials stopped
    for another reason (an error, an interrupt, a dead worker) are retried, not counted.

    Returns:
        ``{proposed, screened, deduplicated, inert, trained, distinct}``; ``distinct`` counts the
        distinct canonical forms among the proposals.
    """
    out = {"proposed": 0, "screened": 0, "deduplicated": 0, "inert": 0, "trained": 0}
    names: set[str] = set()
    for r in records:
        if not r.form or r.role != ROLE_CANDIDATE:
            continue
        kind = r.failure_kind
        if kind == FAIL_SCREENED:
            fate = "screened"
        elif r.duplicate_of is not None and r.state != "RUNNING":
            fate = "deduplicated"
        elif kind == FAIL_INERT:
            fate = "inert"
        elif r.state in ("COMPLETE", "PRUNED") or (r.state == "FAIL" and kind in COUNTED_FAILURES):
            fate = "trained"
        else:
            continue
        out[fate] += 1
        out["proposed"] += 1
        names.add(str(r.form.get("name")))
    return {**out, "distinct": len(names)}
