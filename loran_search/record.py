"""The trial record: the one contract between the search that writes it and the analysis.

Everything a study stores about its trials is named here, once (DESIGN.md, "Trial record in
Optuna storage"):

* **params**: :data:`PARAM_ACTIVATION` (a registry name), :data:`PARAM_RANK`,
  ``<activation>.<param>`` per searched parameter of the chosen activation and
  ``training.<key>`` (:data:`TRAINING_PREFIX`) per searched training hyperparameter;
* **user attrs**: :data:`ROLE` (one of :data:`ROLES`), :data:`ACTIVATION_SPEC`
  (``{name, family, params}`` fully resolved), :data:`SEED_METRICS` (``{"<seed>": {metric:
  value}}``), :data:`STABILITY` (``{"<seed>": {diverged, diverged_at_step, grad_norm_max,
  loss_spikes, final_train_loss}}``), :data:`COST` (``train_seconds`` = mean per run,
  ``train_seconds_total``, ``peak_memory_mb`` = max, ``trainable_params``), :data:`HISTORY`
  (``{"<seed>": [{step, loss, grad_norm, lr, …}]}``), :data:`ZERO_SHOT`, :data:`ADAPTER_PATH`
  when an adapter was kept, :data:`RECORD_VERSION_KEY`; :data:`EVAL_SPLIT` (the split every
  seed was evaluated on: ``task.eval_split`` for search trials, ``study.confirm.split`` for
  confirmation trials); :data:`MECHANISM` (``{"<seed>": {nonlinearity_median, …,
  p_quantiles, nonlinearity_pooled, seconds}}``: ``RunResult.mechanism`` without its
  per-layer ``layers`` list, floats to 7 significant digits, non-finite as ``null``,
  ``inert`` a boolean); the per-example outcomes ``examples.<seed>``
  (:data:`EXAMPLES_PREFIX`, see *Examples* below); on a confirmation trial (roles
  :data:`CONFIRM_ROLES`) :data:`CONFIRM_OF` (the numbers of the search trials of that
  configuration) and :data:`CONFIRM_KEY` (its queue key); on a candidate
  :data:`PREDICTED_NONLINEARITY` (``ν̂`` of its ``f`` at the trained baseline's ``P``, predicted
  before training, when that baseline had finished); :data:`ENVIRONMENT` (the environment
  fingerprint of the machine that ran it, :mod:`loran_search.environment`: CPU model and
  kernel flags, cores, GPUs, package versions, compute dtype, threads, deterministic setting;
  absent in records written before issue 22); a failed trial has :data:`FAILURE`
  (a sentence that starts with its kind, ``diverged: seed 0 diverged at step 4 …``) and
  :data:`FAILURE_KIND` (one of :data:`FAILURE_KINDS`); a pruned one :data:`PRUNED`;
* **trial system attrs**: :data:`WORKER` (``{host, pid, start}`` of the process running it),
  :data:`HEARTBEAT` (the journal's heartbeat, a UNIX time), and on a retry
  :data:`RETRY_HISTORY` / :data:`FAILED_TRIAL` (the numbers of the trials it repeats, in the form
  of Optuna's ``RetryHeartbeatStaleTrialCallback``);
* **study user attrs**: :data:`STUDY_SETUP` (what a trial measures: space, seeds, metric,
  directions, model, task, adapter, training), :data:`STUDY_FINGERPRINT` (its digest),
  :data:`STUDY_READY` (the creator finished queuing), :data:`STUDY_CONFIG_PATH`,
  :data:`STUDY_REPORT_ARTIFACTS` (``{filename: artifact_id}`` of the published report),
  :data:`STUDY_CONFIRM` (the confirmation setup ``{top_k, seeds, split}`` once a confirmation
  was queued; not part of the fingerprint), and in hand-made or older studies
  :data:`STUDY_METRIC` / :data:`STUDY_DIRECTION`.

*Examples.* Optuna stores a user attr as JSON text and MySQL's ``TEXT`` holds 64 KB, so the
outcomes of one seed are stored column-wise, ``examples.<seed>`` = ``{"id": [str, …],
"<value>": [number | str | null, …], …}`` (one list per field of the per-example dicts, all of
the same length, in evaluation order; floats to 7 significant digits, non-finite as ``null``,
booleans as 0/1). When that JSON is longer than :data:`EXAMPLES_CHUNK_CHARS` characters the rows
are split into consecutive parts ``examples.<seed>.0``, ``examples.<seed>.1``, … (each a
columnar mapping of the same shape, each under the limit) and ``examples.<seed>`` is then the
index ``{"parts": n, "rows": m}``, written after the parts: a reader joins the parts in order,
and a seed whose index is missing or whose parts are incomplete reads as absent.

*Meanings both sides use.* The form layout (:data:`FORM_CHOICE`, :data:`FORM_PREFIX`,
:data:`FORM_FAMILY`, :data:`FORM_NAME_PREFIX`; the stored ``search.forms.params``, read by
:func:`form_param_declarations`), the inert threshold :data:`INERT_THRESHOLD` and the one rule
for the visited range of ``P`` (:func:`visited_bound`, :func:`visited_range`) are defined here
and nowhere else (``tests/test_architecture.py``).

The writer builds user attrs with :func:`to_user_attrs`, :func:`examples_attrs` and
:func:`failure_attrs`; every reader turns an ``optuna.trial.FrozenTrial`` into a
:class:`TrialRecord` with :meth:`TrialRecord.from_frozen`, which tolerates older and partial
records (a missing or ill-typed field reads as ``None`` or empty, never raises).

This module imports only the standard library (``optuna`` only for type checking).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

RECORD_VERSION = 1
"""The version of the record written today (a record without one is read as version 0)."""

BASELINE_ACTIVATION = "identity"
"""The baseline's activation: ``f = identity`` makes LoRAN exactly LoRA (QLoRA)."""

# -- params ------------------------------------------------------------------------------------

PARAM_ACTIVATION = "activation"
PARAM_RANK = "rank"
PARAM_METHOD = "method"  # issue 13: only in studies with peer arms (search.methods ≠ [loran])
METHOD_LORAN = "loran"
METHOD = "method"
"""User attr of a peer arm's trial: ``{name, rank, match, params}`` (``rank``: the searched one;
the rank trained is ``cost.adapter_rank``). Its ``activation_spec`` is ``{name: <method>,
family: METHOD_FAMILY, params: <settings>}``, so a reader groups it like a configuration."""
METHOD_FAMILY = "method"
TRAINING_PREFIX = "training."

# -- roles -------------------------------------------------------------------------------------

ROLE_BASELINE = "baseline"
ROLE_CANDIDATE = "candidate"
ROLE_CONFIRM = "confirm"  # a top candidate retrained on the confirmation seeds and split
ROLE_CONFIRM_BASELINE = "confirm_baseline"  # the baseline at a confirmed candidate's rank
# an arm the confirmation will take, trained at one point of study.tune (issue 21)
ROLE_TUNE = "tune"
SEARCH_ROLES = (ROLE_BASELINE, ROLE_CANDIDATE)
CONFIRM_ROLES = (ROLE_CONFIRM, ROLE_CONFIRM_BASELINE)
ROLES = (ROLE_BASELINE, ROLE_CANDIDATE, ROLE_CONFIRM, ROLE_CONFIRM_BASELINE, ROLE_TUNE)

# -- trial user attrs --------------------------------------------------------------------------

ROLE = "role"
EVAL_SPLIT = "eval_split"
ACTIVATION_SPEC = "activation_spec"
SEED_METRICS = "seed_metrics"
STABILITY = "stability"
COST = "cost"
HISTORY = "history"
ZERO_SHOT = "zero_shot"
ADAPTER_PATH = "adapter_path"
RECORD_VERSION_KEY = "record_version"
FAILURE = "failure"
FAILURE_KIND = "failure_kind"
PRUNED = "pruned"
MECHANISM = "mechanism"
EXAMPLES_PREFIX = "examples."
CONFIRM_OF = "confirm_of"
CONFIRM_KEY = "confirm_key"
PREDICTED_NONLINEARITY = "predicted_nonlinearity"
ENVIRONMENT = "environment"  # issue 22: where the trial ran (loran_search.environment)
# Tuning (study.tune, issue 21): the training values a tune or confirmation trial trains with
# beyond its params (``{"training.learning_rate": 0.001}``); a tune trial's queue key and the
# confirmation key of the arm it tunes. Retries keep all three.
TUNED = "tuned"
TUNE_KEY = "tune_key"
TUNE_ARM = "tune_arm"
TUNE_ATTRS = (TUNED, TUNE_KEY, TUNE_ARM)
# adapter.normalize: slope (issue 21): ``{mode: slope, slope_at_zero: f′(0)}`` of a LoRAN trial
NORMALIZE = "normalize"
# Form search (search.forms, issue 12): the form of a form trial, ``{name, expr, tree, key[,
# interval]}`` (``expr`` the canonical formula, ``key`` the dedup key, ``interval`` the range it
# was screened on); on a repeat proposal answered from an earlier trial, that trial's number
# (DUPLICATE_OF) and, when it was COMPLETE, the sentence saying so (DEDUPLICATED).
FORM = "form"
DUPLICATE_OF = "duplicate_of"
DEDUPLICATED = "deduplicated"
LEGACY_SEED = "seed"  # version-0 records: the one seed a trial value stands for
LEGACY_ACTIVATION = "activation"  # version-0 records: the activation as a user attr
LEGACY_RANK = "rank"

# -- failure kinds (the word before the colon of ``failure``) ----------------------------------

FAIL_DIVERGED = "diverged"  # a seed's training diverged: the configuration is unstable
FAIL_NONFINITE = "nonfinite"  # a seed's metric (or a cost objective) is NaN or infinite
FAIL_SCREENED = "screened"  # reserved: refused by a screening run before the full training
FAIL_INERT = "inert"  # search.skip_inert: the predicted non-linearity is below the threshold
FAIL_ERROR = "error"  # the training function raised (a missing file, out of memory, a bug)
FAIL_INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM during the trial
FAIL_STALE = "stale"  # its worker died (no heartbeat, process gone)
FAIL_SURPLUS = "surplus"  # other workers had filled n_trials first, or a duplicate retry
FAIL_CONFIG = "config"  # the study setup is wrong (no study.metric, an unusable train result)
FAILURE_KINDS = (
    FAIL_DIVERGED,
    FAIL_NONFINITE,
    FAIL_SCREENED,
    FAIL_INERT,
    FAIL_ERROR,
    FAIL_INTERRUPTED,
    FAIL_STALE,
    FAIL_SURPLUS,
    FAIL_CONFIG,
)
CONFIGURATION_FAILURES = (FAIL_DIVERGED, FAIL_NONFINITE, FAIL_SCREENED, FAIL_INERT)
"""Failures of the configuration itself: a result (the point is unstable), never retried."""
COUNTED_FAILURES = CONFIGURATION_FAILURES
"""Failure kinds that use up one of ``n_trials`` candidate slots (every other kind is retried)."""
RETRIED_AT_START = (FAIL_ERROR,)
"""Kinds a worker queues again when it starts (once its cause may be fixed); interrupted, stale,
surplus and config failures are queued again at once."""
STOPPED_EARLY = (FAIL_INTERRUPTED, FAIL_STALE, FAIL_SURPLUS)
"""Kinds whose trial was stopped before it could finish; a retry stands in for it."""

# -- trial system attrs ------------------------------------------------------------------------

WORKER = "loran.worker"
HEARTBEAT = "loran.heartbeat"
RETRY_HISTORY = "retry_history"
FAILED_TRIAL = "failed_trial"

# -- study user attrs --------------------------------------------------------------------------

STUDY_SETUP = "loran.setup"
STUDY_FINGERPRINT = "loran.fingerprint"
STUDY_READY = "loran.ready"
STUDY_CONFIG_PATH = "loran.config_path"
STUDY_REPORT_ARTIFACTS = "loran.report_artifacts"
STUDY_CONFIRM = "loran.confirm"
STUDY_TUNE = "loran.tune"  # {"grid": {name: [values]} | None}: the tuning the study ran with

EXAMPLES_CHUNK_CHARS = 60_000
"""The most characters of JSON one ``examples.*`` user attr holds (MySQL ``TEXT``: 64 KB)."""
SIGNIFICANT_DIGITS = 7
"""Floats in ``mechanism`` and ``examples`` are stored to this many significant digits."""
MECHANISM_DROPPED = ("layers",)
"""Keys of ``RunResult.mechanism`` left out of the record (the per-layer list: too large)."""
STUDY_METRIC = "metric"
STUDY_DIRECTION = "direction"

# -- forms (search.forms): the layout both the search and the report read ---------------------

FORM_CHOICE = "form"
"""The ``activation`` param of a form trial: "a form of the grammar", beside registry names."""
FORM_PREFIX = "form"
"""Prefix of a form's trial params (``form.G``, ``form.G.l``, ``form.<param>``) and of the keys
of ``search.forms.params`` in :data:`STUDY_SETUP` (:func:`form_param_declarations`)."""
FORM_FAMILY = "form"
"""The registry family of every form: ``activation_spec.family`` of a form trial."""
FORM_NAME_PREFIX = "form_"
"""A form's registry name is this + the first 10 hex digits of sha256(its canonical formula)."""

# -- the mechanism: what both the search's screening and the report judge by -----------------

INERT_THRESHOLD = 1e-3
"""``ν`` below which a configuration is inert: LoRA in all but name.

With ``ν = ‖f(P) − P‖_F / ‖P‖_F``, ``‖Δ − s·P‖_F = ν·‖s·P‖_F``: below 1e-3 the LoRAN update
differs from the LoRA update of the same factors by under 0.1% of its norm, and so the layer's
output change ``‖x·(Δ − s·P)ᵀ‖ ≤ ν·‖s·P‖_F·‖x‖`` by under 0.1% of what the adapter adds. Two LoRA
runs that differ only in the seed differ in their updates by far more than that (order one
relative), so a short fine-tuning run cannot tell such an ``f`` from the identity. The telemetry
flags inert layers with it, the search skips predicted-inert candidates with it
(``search.skip_inert``) and the report calls configurations inert with it."""
UNIT_RANGE = (-1.0, 1.0)
"""The range of ``P`` assumed where no trial has recorded one (before any ran; older records)."""


# -- writing -----------------------------------------------------------------------------------


def to_user_attrs(
    *,
    role: str | None = None,
    activation_spec: Mapping[str, Any] | None = None,
    seed_metrics: Mapping[str, Mapping[str, float]] | None = None,
    stability: Mapping[str, Mapping[str, Any]] | None = None,
    cost: Mapping[str, Any] | None = None,
    history: Mapping[str, list[dict[str, Any]]] | None = None,
    zero_shot: Mapping[str, Any] | None = None,
    adapter_path: str | None = None,
    eval_split: str | None = None,
    mechanism: Mapping[str, Mapping[str, Any]] | None = None,
    confirm_of: list[int] | tuple[int, ...] | None = None,
    confirm_key: str | None = None,
    predicted_nonlinearity: float | None = None,
    environment: Mapping[str, Any] | None = None,
    version: bool = False,
) -> dict[str, Any]:
    """The user attrs of a trial record, keyed as the contract says; ``None`` fields left out.

    The writer calls it as a trial progresses (seed by seed, so a failed trial keeps what it
    measured) and sets each returned item with ``trial.set_user_attr``.

    Args:
        role: One of :data:`ROLES`.
        activation_spec: ``{name, family, params}`` with every parameter resolved.
        seed_metrics: ``{"<seed>": {metric: value}}`` of the completed seeds.
        stability: ``{"<seed>": {diverged, diverged_at_step, grad_norm_max, …}}``.
        cost: The trial's cost (see the module docstring).
        history: ``{"<seed>": [{step, loss, grad_norm, lr, …}]}``.
        zero_shot: ``{"<seed>": metrics}`` of the unadapted model, when measured.
        adapter_path: Absolute path of the kept adapter.
        eval_split: The split the trial was evaluated on.
        mechanism: ``{"<seed>": RunResult.mechanism}``; stored by :func:`mechanism_attr`
            (``layers`` dropped, floats rounded, non-finite as ``None``).
        confirm_of: A confirmation trial's search trial numbers of the same configuration.
        confirm_key: A confirmation trial's queue key (:data:`CONFIRM_KEY`).
        predicted_nonlinearity: A candidate's ``ν̂`` predicted before training.
        environment: The environment fingerprint of the machine running the trial
            (:func:`loran_search.environment.trial_fingerprint`).
        version: Add :data:`RECORD_VERSION_KEY` = :data:`RECORD_VERSION`.

    Raises:
        ValueError: ``role`` is not one of :data:`ROLES`.
    """
    if role is not None and role not in ROLES:
        raise ValueError(f"Unknown trial role {role!r}; one of {', '.join(ROLES)}.")
    items: dict[str, Any] = {
        ROLE: role,
        RECORD_VERSION_KEY: RECORD_VERSION if version else None,
        ACTIVATION_SPEC: _plain(activation_spec),
        SEED_METRICS: _plain(seed_metrics),
        STABILITY: _plain(stability),
        HISTORY: _plain(history),
        COST: _plain(cost),
        ZERO_SHOT: _plain(zero_shot) or None,
        ADAPTER_PATH: adapter_path,
        EVAL_SPLIT: eval_split,
        MECHANISM: mechanism_attr(mechanism) if mechanism is not None else None,
        CONFIRM_OF: [int(n) for n in confirm_of] if confirm_of is not None else None,
        CONFIRM_KEY: confirm_key,
        PREDICTED_NONLINEARITY: (
            round_value(float(predicted_nonlinearity))
            if predicted_nonlinearity is not None
            else None
        ),
        ENVIRONMENT: _plain(environment),
    }
    return {k: v for k, v in items.items() if v is not None}


def round_value(value: Any) -> Any:
    """A number as the record stores it: 7 significant digits, non-finite ``None``."""
    return _round(value, bools=True)


def _round(value: Any, *, bools: bool = False) -> Any:
    """A JSON-safe scalar: floats to :data:`SIGNIFICANT_DIGITS`, non-finite ``None``.

    Booleans stay booleans when ``bools``, else become 0/1 (an example's value is a number).
    """
    if isinstance(value, bool):
        return value if bools else int(value)
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else None
    if isinstance(value, (int, str)) or value is None:
        return value
    try:  # numpy and torch scalars
        return _round(float(value))
    except (TypeError, ValueError):
        return str(value)


def _compact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_compact(v) for v in value]
    return _round(value, bools=True)


def mechanism_attr(mechanism: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored :data:`MECHANISM`: per seed, the summary without :data:`MECHANISM_DROPPED`.

    Args:
        mechanism: ``{"<seed>": RunResult.mechanism}`` (a seed with ``{}``, no LoRAN layer, is
            kept as ``{}``).
    """
    return {
        str(seed): {str(k): _compact(v) for k, v in (m or {}).items() if k not in MECHANISM_DROPPED}
        for seed, m in mechanism.items()
    }


def examples_columns(rows: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Per-example dicts as columns ``{"id": [...], field: [...]}`` (see *Examples*).

    ``id`` comes first and is a string; the other fields in first-seen order, a row without a
    field gets ``None`` there; values as :func:`_round` stores them.
    """
    names: list[str] = ["id"]
    for row in rows:
        for k in row:
            if str(k) not in names:
                names.append(str(k))
    cols: dict[str, list[Any]] = {n: [] for n in names}
    for row in rows:
        plain = {str(k): v for k, v in row.items()}
        cols["id"].append(None if plain.get("id") is None else str(plain["id"]))
        for n in names[1:]:
            cols[n].append(_round(plain.get(n)))
    return cols


def _json_len(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def examples_attrs(
    seed: Any, rows: list[Mapping[str, Any]], *, limit: int = EXAMPLES_CHUNK_CHARS
) -> dict[str, Any]:
    """The user attrs of one seed's per-example outcomes (``examples.<seed>`` [+ parts]).

    Args:
        seed: The seed (its string is the key).
        rows: ``RunResult.examples``: one dict per example with its stable ``id``.
        limit: The most JSON characters per user attr (:data:`EXAMPLES_CHUNK_CHARS`).

    Returns:
        ``{"examples.<seed>": columns}`` when it fits, else ``{"examples.<seed>.0": part, …,
        "examples.<seed>": {"parts": n, "rows": m}}`` in that order (set them in order: the
        index last). ``{}`` for no rows.
    """
    if not rows:
        return {}
    key = f"{EXAMPLES_PREFIX}{seed}"
    cols = examples_columns(rows)
    total = _json_len(cols)
    if total <= limit:
        return {key: cols}
    n = len(rows)
    out: dict[str, Any] = {}
    start, part = 0, 0
    per = max(1, int(n * limit / total * 0.9))  # a first guess, halved until a part fits
    while start < n:
        size = min(per, n - start)
        while True:
            chunk = {c: v[start : start + size] for c, v in cols.items()}
            if _json_len(chunk) <= limit or size == 1:
                break
            size = max(1, size // 2)
        out[f"{key}.{part}"] = chunk
        start += size
        part += 1
    out[key] = {"parts": part, "rows": n}
    return out


def is_examples_key(key: str) -> bool:
    """Whether a user attr key is one of the ``examples.*`` attrs."""
    return key.startswith(EXAMPLES_PREFIX)


def read_examples(user_attrs: Mapping[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """``{"<seed>": columns}`` from a trial's user attrs, parts joined (see *Examples*).

    A seed whose value is not a columnar mapping, whose parts are incomplete or whose columns
    differ in length is left out; never raises.
    """
    out: dict[str, dict[str, list[Any]]] = {}
    for key, value in user_attrs.items():
        if not isinstance(key, str) or not key.startswith(EXAMPLES_PREFIX):
            continue
        seed = key[len(EXAMPLES_PREFIX) :]
        if not seed or "." in seed or not isinstance(value, Mapping):
            continue  # a part (``examples.<seed>.<k>``) is read with its index
        if "id" in value:
            cols = _columns(value)
        elif isinstance(value.get("parts"), int) and not isinstance(value.get("parts"), bool):
            parts = [user_attrs.get(f"{key}.{k}") for k in range(int(value["parts"]))]
            cols = _join(parts)
            rows = value.get("rows")
            if cols is not None and isinstance(rows, int) and len(cols["id"]) != rows:
                cols = None
        else:
            cols = None
        if cols is not None:
            out[seed] = cols
    return out


def _columns(value: Any) -> dict[str, list[Any]] | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("id"), list):
        return None
    cols = {str(k): list(v) for k, v in value.items() if isinstance(v, list)}
    n = len(cols["id"])
    if len(cols) != len(value) or any(len(v) != n for v in cols.values()):
        return None
    return cols


def _join(parts: list[Any]) -> dict[str, list[Any]] | None:
    joined: dict[str, list[Any]] | None = None
    for part in parts:
        cols = _columns(part)
        if cols is None:
            return None
        if joined is None:
            joined = {k: list(v) for k, v in cols.items()}
        elif set(cols) != set(joined):
            return None
        else:
            for k, v in cols.items():
                joined[k].extend(v)
    return joined


def failure_attrs(kind: str, message: str) -> dict[str, str]:
    """``{failure: "<kind>: <message>", failure_kind: kind}`` of a failed trial.

    Raises:
        ValueError: ``kind`` is not one of :data:`FAILURE_KINDS`.
    """
    if kind not in FAILURE_KINDS:
        raise ValueError(f"Unknown failure kind {kind!r}; one of {', '.join(FAILURE_KINDS)}.")
    text = message if message.startswith(f"{kind}:") else f"{kind}: {message}"
    return {FAILURE: text, FAILURE_KIND: kind}


def failure_kind_of(failure: Any) -> str | None:
    """The kind a ``failure`` sentence starts with (``"diverged: …"`` → ``diverged``), if known."""
    if not isinstance(failure, str):
        return None
    head = failure.split(":", 1)[0].strip()
    return head if head in FAILURE_KINDS and ":" in failure else None


def _plain(value: Any) -> Any:
    """Mappings and lists copied into plain ``dict``/``list`` (JSON-able as Optuna stores it)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# -- reading -----------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any] | None:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _rank(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number == int(number) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _numbers(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(int(n) for n in value if isinstance(n, int) and not isinstance(n, bool))


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


def form_param_declarations(study_user_attrs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{param: declaration}`` of the study's ``search.forms.params``, as the search stored it.

    The stored layout: :data:`STUDY_SETUP` = ``{…, "space": {…, "forms": {template, leaves,
    operators, depth, require, "params": {"<FORM_PREFIX>.<param>": declaration}}}}`` with a
    declaration one of ``{"fixed": v}``, ``{"choices": [v, …]}`` or ``{"low", "high", "log"[,
    "step", "num", "integer"]}`` (the search's ``Dim.to_dict``). A study without forms, or a
    part that is not that shape, reads as ``{}``; never raises.
    """
    setup = study_user_attrs.get(STUDY_SETUP)
    space = setup.get("space") if isinstance(setup, Mapping) else None
    forms = space.get("forms") if isinstance(space, Mapping) else None
    params = forms.get("params") if isinstance(forms, Mapping) else None
    head = f"{FORM_PREFIX}."
    return {
        key[len(head) :]: dict(value)
        for key, value in (params.items() if isinstance(params, Mapping) else ())
        if isinstance(key, str) and key.startswith(head) and isinstance(value, Mapping)
    }


def form_param_range(
    declaration: Mapping[str, Any] | None, values: Iterable[float]
) -> tuple[float, float, bool]:
    """``(low, high, log)``: the smallest range holding a declared form parameter and ``values``.

    ``low = min(values ∪ D)``, ``high = max(values ∪ D)`` with ``D`` the declared ``{low, high}``
    or ``choices`` (nothing for a fixed value); ``log`` as declared (``False`` when not said).

    Raises:
        ValueError: Neither ``values`` nor the declaration gives a number.
    """
    d = declaration or {}
    points = [float(v) for v in values]
    if "low" in d and "high" in d:
        points += [float(d["low"]), float(d["high"])]
    elif "choices" in d:
        points += [float(c) for c in d["choices"]]
    return min(points), max(points), bool(d.get("log", False))


def p_abs_max(mechanism: Any) -> float | None:
    """``max |P|`` of one seed's stored :data:`MECHANISM`: ``max(|q_0|, |q_N|)`` of its quantiles.

    ``p_quantiles`` holds ``q_k = Q(k/N)`` of the pooled entries of every ``P = B·A``, so
    ``q_0 = min P`` and ``q_N = max P`` exactly. ``None`` when they are missing or not finite (a
    diverged run) or both are 0.
    """
    qs = mechanism.get("p_quantiles") if isinstance(mechanism, Mapping) else None
    if not isinstance(qs, list) or not qs:
        return None
    ends = [abs(float(q)) for q in (qs[0], qs[-1]) if _number(q) is not None]
    return max(ends) if ends and max(ends) > 0 else None


def visited_bound(
    trials: Iterable[TrialRecord | FrozenTrial], rank: int | None = None
) -> float | None:
    r"""``m``, the largest ``|P|`` the study's trained updates reached: ``P ∈ [−m, m]``.

    **The one rule** for the range of ``P = B·A`` on which ``f`` is judged, used alike by the
    search's screening of a form (:func:`visited_range` at the form's rank, before it trains) and
    by the report and ``activations audit/plot --study`` (all ranks). With ``T`` the COMPLETE
    trials of the search roles (:data:`SEARCH_ROLES`: baseline and candidate) at ``rank``
    (every rank for ``None``) and ``q^{t,s}`` the stored quantiles of trial ``t``, seed ``s``
    (:func:`p_abs_max`),

    .. math::

        m = \max_{t ∈ T,\, s} \max\left(|q^{t,s}_0|,\ |q^{t,s}_N|\right)
          = \max_{t,s} \max_{ij} |P^{t,s}_{ij}|,

    and the visited range is ``[−m, m] ⊇ [min P, max P]`` of every such run.

    * *The largest entry, not a percentile.* ``f`` is applied to every entry of ``P``. The
      screening certifies ``f(0) = 0``, ``f`` and ``f'`` finite and ``sup |f'| ≤ L`` on the range;
      on ``[−p_{99.9}, p_{99.9}]`` it would leave out 0.1% of the entries (13 000 of the
      1.3·10⁷ of SmolLM2's q/v updates at r = 8), where a pole could sit unseen. The report
      measures and draws ``f`` on the same range, so what it shows is what was certified.
    * *Baselines too.* Baselines run first, so before a candidate of ``rank`` completes their
      ``P`` is the only evidence; keeping it afterwards makes ``m`` non-decreasing as trials
      complete, so a later form is screened on a superset of every earlier one's range (the
      screening never becomes laxer as the study learns).
    * *Search roles only.* Confirmation trials retrain the chosen configurations after the
      search: no form was ever screened on them.
    * *Every rank for the report.* It shows all forms on one axis, ``m = max_r m_r``, which
      holds every form's screening range (each was computed on some of these trials).

    Args:
        trials: Trial records, or Optuna's frozen trials (read with
            :meth:`TrialRecord.from_frozen`).
        rank: Only the trials of this rank (``None``: all).

    Returns:
        ``m > 0``, or ``None`` when no such trial recorded a finite non-zero ``|P|``.
    """
    m = 0.0
    for t in trials:
        r = t if isinstance(t, TrialRecord) else TrialRecord.from_frozen(t)
        if r.state != "COMPLETE" or r.role not in SEARCH_ROLES:
            continue
        if rank is not None and r.rank != rank:
            continue
        m = max([m, *(v for v in map(p_abs_max, r.mechanism.values()) if v is not None)])
    return m if m > 0 else None


def visited_range(
    trials: Iterable[TrialRecord | FrozenTrial], rank: int | None = None
) -> tuple[float, float]:
    """``[−m, m]`` of :func:`visited_bound` (the one rule), :data:`UNIT_RANGE` when none."""
    m = visited_bound(trials, rank)
    return (-m, m) if m is not None else UNIT_RANGE


# ------------------------------------------------------------------------------ loss spikes

#: A step's loss is a spike when it exceeds ``spike_factor`` × the median of the last
#: ``SPIKE_WINDOW`` losses, given at least ``SPIKE_MIN_HISTORY`` of them. Training counts the
#: spikes it records with this rule; the report marks them on the loss curve with the same rule.
SPIKE_WINDOW = 10
SPIKE_MIN_HISTORY = 3


def is_spike(loss: float, previous: list[float], factor: float) -> bool:
    """``loss > factor × median(last ≤10 previous losses)``, given ≥ 3 previous steps."""
    if len(previous) < SPIKE_MIN_HISTORY:
        return False
    return loss > factor * statistics.median(previous[-SPIKE_WINDOW:])


# ------------------------------------------------------------------------------ study attrs
# The read side of the study user attrs and of the tuning attrs a trial carries beyond
# TrialRecord (study.tune, adapter.normalize); every reader goes through these, never through
# ``user_attrs.get``. Each tolerates a missing or ill-typed attr.

#: ``report.target_gain`` as a study user attr: flat, or inside a ``report`` mapping.
STUDY_TARGET_GAIN = "report.target_gain"
STUDY_REPORT = "report"


@dataclass(frozen=True)
class StudyAttrs:
    """The study user attrs the analysis reads.

    Attributes:
        setup: The search's record of the study setup (:data:`STUDY_SETUP`); empty when absent.
        confirm: The confirmation setup (:data:`STUDY_CONFIRM`), ``None`` when absent.
        metric: The study metric (:data:`STUDY_METRIC`), ``None`` when absent.
        direction: The direction (:data:`STUDY_DIRECTION`, a string or a list), as stored.
        report_artifacts: ``{filename: artifact id}`` of the published report
            (:data:`STUDY_REPORT_ARTIFACTS`), ``None`` when absent.
        target_gains: The values of ``report.target_gain`` the study states, first the flat
            attr, then the ``report`` mapping's, then the setup's (``None`` where absent).
    """

    setup: dict[str, Any]
    confirm: dict[str, Any] | None = None
    metric: Any = None
    direction: Any = None
    report_artifacts: dict[str, Any] | None = None
    target_gains: tuple[Any, ...] = ()

    @classmethod
    def of(cls, user_attrs: Mapping[str, Any]) -> StudyAttrs:
        """Read a study's ``user_attrs`` (``optuna.Study.user_attrs``)."""
        setup = _dict(user_attrs.get(STUDY_SETUP)) or {}
        report = _dict(user_attrs.get(STUDY_REPORT)) or {}
        setup_report = _dict(setup.get(STUDY_REPORT)) or {}
        return cls(
            setup=setup,
            confirm=_dict(user_attrs.get(STUDY_CONFIRM)),
            metric=user_attrs.get(STUDY_METRIC),
            direction=user_attrs.get(STUDY_DIRECTION),
            report_artifacts=_dict(user_attrs.get(STUDY_REPORT_ARTIFACTS)),
            target_gains=(
                user_attrs.get(STUDY_TARGET_GAIN),
                report.get("target_gain"),
                setup_report.get("target_gain"),
            ),
        )

    def section(self, name: str) -> dict[str, Any]:
        """One section of the setup (``model``, ``task``, ``adapter``, …); empty when absent."""
        return _dict(self.setup.get(name)) or {}


@dataclass(frozen=True)
class TuneAttrs:
    """The tuning attrs of one trial (``study.tune``, ``adapter.normalize``; issue 21).

    Attributes:
        tuned: The training values it trained with beyond its params (:data:`TUNED`).
        tune_arm: A tune trial's arm, the confirmation key it tunes (:data:`TUNE_ARM`).
        confirm_key: A confirmation trial's key (:data:`CONFIRM_KEY`), as stored.
        normalize: ``{mode, slope_at_zero}`` of a normalised LoRAN trial (:data:`NORMALIZE`).
    """

    tuned: dict[str, Any] | None = None
    tune_arm: str | None = None
    confirm_key: Any = None
    normalize: dict[str, Any] | None = None

    @classmethod
    def of(cls, user_attrs: Mapping[str, Any]) -> TuneAttrs:
        """Read one trial's ``user_attrs``."""
        return cls(
            tuned=_dict(user_attrs.get(TUNED)),
            tune_arm=_str(user_attrs.get(TUNE_ARM)),
            confirm_key=user_attrs.get(CONFIRM_KEY),
            normalize=_dict(user_attrs.get(NORMALIZE)),
        )
