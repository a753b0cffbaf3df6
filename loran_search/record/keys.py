"""The names of the record: every param, role, attr key and failure kind, and their limits.

A key is written by the search and read by the analysis under the one name given here; the
meaning of each is in the package docstring (:mod:`loran_search.record`). Imports nothing.
"""

from __future__ import annotations

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
# in hand-made or older studies
STUDY_METRIC = "metric"
STUDY_DIRECTION = "direction"
#: ``report.target_gain`` as a study user attr: flat, or inside a ``report`` mapping.
STUDY_TARGET_GAIN = "report.target_gain"
STUDY_REPORT = "report"

# -- what a stored value may hold ---------------------------------------------------------------

EXAMPLES_CHUNK_CHARS = 60_000
"""The most characters of JSON one ``examples.*`` user attr holds (MySQL ``TEXT``: 64 KB)."""
SIGNIFICANT_DIGITS = 7
"""Floats in ``mechanism`` and ``examples`` are stored to this many significant digits."""
MECHANISM_DROPPED = ("layers",)
"""Keys of ``RunResult.mechanism`` left out of the record (the per-layer list: too large)."""

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
