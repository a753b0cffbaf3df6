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
for the visited range of ``P`` (:func:`visited_bound`, :func:`visited_range`) are defined in
this package and nowhere else (``tests/test_architecture.py``).

The writer builds user attrs with :func:`to_user_attrs`, :func:`examples_attrs` and
:func:`failure_attrs`; every reader turns an ``optuna.trial.FrozenTrial`` into a
:class:`TrialRecord` with :meth:`TrialRecord.from_frozen`, which tolerates older and partial
records (a missing or ill-typed field reads as ``None`` or empty, never raises).

The package imports only the standard library (``optuna`` only for type checking). Its modules,
each importing only those above it (docs/architecture.md, "Order inside packages"):

* :mod:`~loran_search.record.keys`: every name of the record (params, roles, attr keys,
  failure kinds, study attrs, the form layout) and the limits of a stored value;
* :mod:`~loran_search.record.values`: rounding and plain copies, :func:`to_user_attrs`,
  :func:`failure_attrs` and :func:`mechanism_attr`, the tolerant readers;
* :mod:`~loran_search.record.examples`: the per-example outcomes, columns and parts;
* :mod:`~loran_search.record.study`: :class:`StudyAttrs` and :class:`TuneAttrs`;
* :mod:`~loran_search.record.trial`: :class:`TrialRecord` and :func:`form_counts`;
* :mod:`~loran_search.record.meanings`: the inert threshold, the visited range of ``P``, the
  stored form parameters and the loss-spike rule.

Import from the package (``from loran_search import record as R``), never from a module.
"""

from __future__ import annotations

from loran_search.record.examples import (
    examples_attrs,
    examples_columns,
    is_examples_key,
    read_examples,
)
from loran_search.record.keys import (
    ACTIVATION_SPEC,
    ADAPTER_PATH,
    BASELINE_ACTIVATION,
    CONFIGURATION_FAILURES,
    CONFIRM_KEY,
    CONFIRM_OF,
    CONFIRM_ROLES,
    COST,
    COUNTED_FAILURES,
    DEDUPLICATED,
    DUPLICATE_OF,
    ENVIRONMENT,
    EVAL_SPLIT,
    EXAMPLES_CHUNK_CHARS,
    EXAMPLES_PREFIX,
    FAIL_CONFIG,
    FAIL_DIVERGED,
    FAIL_ERROR,
    FAIL_INERT,
    FAIL_INTERRUPTED,
    FAIL_NONFINITE,
    FAIL_SCREENED,
    FAIL_STALE,
    FAIL_SURPLUS,
    FAILED_TRIAL,
    FAILURE,
    FAILURE_KIND,
    FAILURE_KINDS,
    FORM,
    FORM_CHOICE,
    FORM_FAMILY,
    FORM_NAME_PREFIX,
    FORM_PREFIX,
    HEARTBEAT,
    HISTORY,
    LEGACY_ACTIVATION,
    LEGACY_RANK,
    LEGACY_SEED,
    MECHANISM,
    MECHANISM_DROPPED,
    METHOD,
    METHOD_FAMILY,
    METHOD_LORAN,
    NORMALIZE,
    PARAM_ACTIVATION,
    PARAM_METHOD,
    PARAM_RANK,
    PREDICTED_NONLINEARITY,
    PRUNED,
    RECORD_VERSION,
    RECORD_VERSION_KEY,
    RETRIED_AT_START,
    RETRY_HISTORY,
    ROLE,
    ROLE_BASELINE,
    ROLE_CANDIDATE,
    ROLE_CONFIRM,
    ROLE_CONFIRM_BASELINE,
    ROLE_TUNE,
    ROLES,
    SEARCH_ROLES,
    SEED_METRICS,
    SIGNIFICANT_DIGITS,
    STABILITY,
    STOPPED_EARLY,
    STUDY_CONFIG_PATH,
    STUDY_CONFIRM,
    STUDY_DIRECTION,
    STUDY_FINGERPRINT,
    STUDY_METRIC,
    STUDY_READY,
    STUDY_REPORT,
    STUDY_REPORT_ARTIFACTS,
    STUDY_SETUP,
    STUDY_TARGET_GAIN,
    STUDY_TUNE,
    TRAINING_PREFIX,
    TUNE_ARM,
    TUNE_ATTRS,
    TUNE_KEY,
    TUNED,
    WORKER,
    ZERO_SHOT,
)
from loran_search.record.meanings import (
    INERT_THRESHOLD,
    SPIKE_MIN_HISTORY,
    SPIKE_WINDOW,
    UNIT_RANGE,
    form_param_declarations,
    form_param_range,
    is_spike,
    p_abs_max,
    visited_bound,
    visited_range,
)
from loran_search.record.study import (
    StudyAttrs,
    TuneAttrs,
)
from loran_search.record.trial import (
    TrialRecord,
    form_counts,
)
from loran_search.record.values import (
    failure_attrs,
    failure_kind_of,
    mechanism_attr,
    round_value,
    to_user_attrs,
)

__all__ = [
    "ACTIVATION_SPEC",
    "ADAPTER_PATH",
    "BASELINE_ACTIVATION",
    "CONFIGURATION_FAILURES",
    "CONFIRM_KEY",
    "CONFIRM_OF",
    "CONFIRM_ROLES",
    "COST",
    "COUNTED_FAILURES",
    "DEDUPLICATED",
    "DUPLICATE_OF",
    "ENVIRONMENT",
    "EVAL_SPLIT",
    "EXAMPLES_CHUNK_CHARS",
    "EXAMPLES_PREFIX",
    "FAILED_TRIAL",
    "FAILURE",
    "FAILURE_KIND",
    "FAILURE_KINDS",
    "FAIL_CONFIG",
    "FAIL_DIVERGED",
    "FAIL_ERROR",
    "FAIL_INERT",
    "FAIL_INTERRUPTED",
    "FAIL_NONFINITE",
    "FAIL_SCREENED",
    "FAIL_STALE",
    "FAIL_SURPLUS",
    "FORM",
    "FORM_CHOICE",
    "FORM_FAMILY",
    "FORM_NAME_PREFIX",
    "FORM_PREFIX",
    "HEARTBEAT",
    "HISTORY",
    "INERT_THRESHOLD",
    "LEGACY_ACTIVATION",
    "LEGACY_RANK",
    "LEGACY_SEED",
    "MECHANISM",
    "MECHANISM_DROPPED",
    "METHOD",
    "METHOD_FAMILY",
    "METHOD_LORAN",
    "NORMALIZE",
    "PARAM_ACTIVATION",
    "PARAM_METHOD",
    "PARAM_RANK",
    "PREDICTED_NONLINEARITY",
    "PRUNED",
    "RECORD_VERSION",
    "RECORD_VERSION_KEY",
    "RETRIED_AT_START",
    "RETRY_HISTORY",
    "ROLE",
    "ROLES",
    "ROLE_BASELINE",
    "ROLE_CANDIDATE",
    "ROLE_CONFIRM",
    "ROLE_CONFIRM_BASELINE",
    "ROLE_TUNE",
    "SEARCH_ROLES",
    "SEED_METRICS",
    "SIGNIFICANT_DIGITS",
    "SPIKE_MIN_HISTORY",
    "SPIKE_WINDOW",
    "STABILITY",
    "STOPPED_EARLY",
    "STUDY_CONFIG_PATH",
    "STUDY_CONFIRM",
    "STUDY_DIRECTION",
    "STUDY_FINGERPRINT",
    "STUDY_METRIC",
    "STUDY_READY",
    "STUDY_REPORT",
    "STUDY_REPORT_ARTIFACTS",
    "STUDY_SETUP",
    "STUDY_TARGET_GAIN",
    "STUDY_TUNE",
    "TRAINING_PREFIX",
    "TUNED",
    "TUNE_ARM",
    "TUNE_ATTRS",
    "TUNE_KEY",
    "UNIT_RANGE",
    "WORKER",
    "ZERO_SHOT",
    "StudyAttrs",
    "TrialRecord",
    "TuneAttrs",
    "examples_attrs",
    "examples_columns",
    "failure_attrs",
    "failure_kind_of",
    "form_counts",
    "form_param_declarations",
    "form_param_range",
    "is_examples_key",
    "is_spike",
    "mechanism_attr",
    "p_abs_max",
    "read_examples",
    "round_value",
    "to_user_attrs",
    "visited_bound",
    "visited_range",
]
