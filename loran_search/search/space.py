"""The search space of a study, built from the activation registry and ``search:``.

A trial's parameters are (contract of DESIGN.md, "Trial record")::

    activation                  categorical over the searched activations
    rank                        categorical over ``search.rank``
    <activation>.<param>        one per *searched* parameter of the chosen activation
    training.<key>              one per entry of ``search.training``
    form.G, form.G.l, …         a form trial's tree, then form.<param> (``search.forms``;
                                ``activation`` = ``"form"``; :mod:`loran_search.search.forms`)

Naming each parameter ``<activation>.<param>`` keeps a name's distribution fixed for the whole
study (Optuna refuses a name whose distribution changes), and makes the space *conditional*:
``sinter.amplitude`` exists only in trials whose ``activation`` is ``sinter``.

Every declared parameter of a searched activation is in exactly one of three states:

* **fixed** — a plain value in ``search.params`` (``sinter.frequency: 1.0e4``) or, when the
  parameter is not listed at all, its registry default;
* **choices** — a list (``sinter.amplitude: [1.0e-4, 1.0e-3]``), a categorical parameter;
* **range** — a mapping ``{low, high, log, step, num}``; omitted ``low``/``high``/``log`` come from
  the registry's declared range, so ``sinter.amplitude: {}`` searches the declared range.

``step`` makes a range discrete for every sampler (``low, low+step, …, high``); ``num`` is only a
grid resolution: the grid sampler takes ``num`` points from ``low`` to ``high`` (geometrically
spaced when ``log``), the other samplers still sample the continuous range.
A key with a glob (``sinter.*: {}``) applies to every matching parameter; an exact key wins over
a glob.

This module imports no optuna at module level (``validate`` uses it; building distributions
imports optuna lazily).
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loran_search.config import (
    StudyConfig,
    TrainingSection,
    training_key_kind,
    unknown_key_problems,
)
from loran_search.record import BASELINE_ACTIVATION, FORM_CHOICE, METHOD_LORAN, PARAM_METHOD
from loran_search.search.types import (
    MAX_GRID_POINTS,
    Dim,
    SpaceError,
    TrialConfig,
)

if TYPE_CHECKING:
    from optuna.trial import Trial

    from loran_search.activations.registry import Param
    from loran_search.search.forms import FormSpace

RANGE_KEYS = ("low", "high", "log", "step", "num")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def grid_size_problem(n: int) -> str | None:
    """Why the grid sampler cannot enumerate a grid of ``n`` points (too many), or ``None``."""
    if n <= MAX_GRID_POINTS:
        return None
    return (
        f"The grid has {n:,} points (search.rank × each activation's own searched values × "
        f"search.training); the grid sampler enumerates at most {MAX_GRID_POINTS:,}. Give fewer "
        "values (shorter lists, a larger `step`, a smaller `num`, fewer ranks), or use another "
        "sampler (tpe, random, ...), which samples the space without enumerating it."
    )


def parse_dim(name: str, raw: Any, declared: Param | None, *, integer: bool = False) -> Dim:
    """Read one ``search.params`` / ``search.training`` entry.

    Args:
        name: Trial parameter name.
        raw: The YAML value: a number (fixed), a list (choices) or a mapping (range).
        declared: The registry's declared parameter (its range bounds every value), or ``None``
            for training hyperparameters (no declared range; ``low`` and ``high`` required).
        integer: The parameter takes integers (for training keys typed ``int``).

    Raises:
        SpaceError: Every way the entry can be wrong, with the fix.
    """
    integer = integer or bool(declared is not None and declared.integer)
    lo_decl = declared.low if declared is not None else -math.inf
    hi_decl = declared.high if declared is not None else math.inf
    rng = f"[{declared.low:g}, {declared.high:g}]" if declared is not None else ""

    def check_value(v: Any, what: str) -> float | int:
        if not _is_number(v):
            raise SpaceError(f"{what} of '{name}' must be a finite number, but got {v!r}.")
        if integer and float(v) != int(v):
            raise SpaceError(f"{what} of '{name}' must be an integer, but got {v!r}.")
        if declared is not None and not lo_decl <= v <= hi_decl:
            raise SpaceError(
                f"{what} {v!r} of '{name}' is outside its declared range {rng}; pick a value "
                "inside it (or register a variant of the activation with a wider range)."
            )
        return int(v) if integer else float(v)

    if _is_number(raw):
        return Dim(name, "fixed", value=check_value(raw, "The value"), integer=integer)
    if isinstance(raw, list):
        if not raw:
            raise SpaceError(f"The list of values of '{name}' is empty; give at least one value.")
        vals = [check_value(v, f"Choice {i}") for i, v in enumerate(raw)]
        if len(set(vals)) != len(vals):
            raise SpaceError(f"The list of values of '{name}' repeats a value: {raw!r}.")
        if len(vals) == 1:
            return Dim(name, "fixed", value=vals[0], integer=integer)
        return Dim(name, "choices", choices=tuple(vals), integer=integer)
    if isinstance(raw, Mapping):
        unknown = unknown_key_problems(raw, RANGE_KEYS, f"in the range of '{name}'")
        if unknown:
            raise SpaceError(" ".join(message for _, message in unknown))
        if declared is None and ("low" not in raw or "high" not in raw):
            raise SpaceError(
                f"The range of '{name}' needs both `low` and `high` (it has no declared range), "
                "e.g. {low: 1.0e-5, high: 1.0e-3, log: true}."
            )
        low = raw.get("low", lo_decl)
        high = raw.get("high", hi_decl)
        for what, v in (("`low`", low), ("`high`", high)):
            if not _is_number(v):
                raise SpaceError(f"{what} of '{name}' must be a finite number, but got {v!r}.")
        if not low <= high:
            raise SpaceError(
                f"`low <= high` must hold for '{name}', but got (low={low!r}, high={high!r}); "
                "swap them."
            )
        if declared is not None and not (lo_decl <= low and high <= hi_decl):
            raise SpaceError(
                f"The range [{low:g}, {high:g}] of '{name}' is outside its declared range {rng}; "
                "narrow it to lie inside (or register a variant with a wider range)."
            )
        log = raw.get("log", declared.log if declared is not None else False)
        if not isinstance(log, bool):
            raise SpaceError(f"`log` of '{name}' must be true or false, but got {log!r}.")
        if log and low <= 0:
            raise SpaceError(f"`log: true` needs `low > 0` for '{name}', but got low={low!r}.")
        step = raw.get("step")
        num = raw.get("num")
        if step is not None:
            if not _is_number(step) or step <= 0:
                raise SpaceError(f"`step` of '{name}' must be a positive number, got {step!r}.")
            if log:
                raise SpaceError(
                    f"'{name}' combines `step` with `log: true`, which Optuna does not allow; "
                    "use `num:` for log-spaced grid points, or drop `log`."
                )
            if num is not None:
                raise SpaceError(f"'{name}' gives both `step` and `num`; keep one.")
        if num is not None and (not isinstance(num, int) or isinstance(num, bool) or num < 2):
            raise SpaceError(f"`num` of '{name}' must be an integer >= 2, got {num!r}.")
        if integer:
            for what, v in (("`low`", low), ("`high`", high), ("`step`", step)):
                if v is not None and float(v) != int(v):
                    raise SpaceError(f"{what} of integer parameter '{name}' must be an integer.")
        if low == high:
            return Dim(name, "fixed", value=int(low) if integer else float(low), integer=integer)
        return Dim(
            name,
            "range",
            low=float(low),
            high=float(high),
            log=log,
            step=None if step is None else float(step),
            num=num,
            integer=integer,
        )
    raise SpaceError(
        f"'{name}' must be a number (fixed), a list of values (choices) or a range "
        f"{{low, high, log, step}}, but got {raw!r}."
    )


@dataclass
class SearchSpace:
    """The resolved space of a study.

    Attributes:
        activations: Searched activation names (families expanded, order kept).
        ranks: Rank choices.
        dims: ``{activation: {param: Dim}}`` for every declared parameter.
        training: ``{key: Dim}`` for searched training hyperparameters.
        training_defaults: ``training:`` values of the searched training keys.
        param_defaults: ``{activation: {param: registry default}}``.
        baseline: Whether identity baselines are part of the study; when ``identity`` is not a
            searched activation the ``activation`` choices still include it (Optuna needs one
            distribution per name) and the sampler is wrapped so candidates never get it.
        forms: The form grammar of ``search.forms`` (:class:`~loran_search.search.forms.\
FormSpace`), whose trials take ``activation`` = ``"form"`` and the ``form.*`` parameters.
    """

    activations: list[str]
    ranks: list[int]
    dims: dict[str, dict[str, Dim]]
    training: dict[str, Dim]
    baseline: bool = True
    training_defaults: dict[str, Any] = field(default_factory=dict)
    param_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    forms: FormSpace | None = None
    methods: list[str] = field(default_factory=lambda: [METHOD_LORAN])
    method_dims: dict[str, dict[str, Dim]] = field(default_factory=dict)
    match: str = "rank"

    @property
    def has_methods(self) -> bool:
        """Peer arms in the study (``search.methods`` ≠ ``[loran]``): a ``method`` param."""
        return list(self.methods) != [METHOD_LORAN]

    def _peer(self, method: str, rank: int, own: dict[str, Any], training: dict[str, Any]) -> Any:
        return TrialConfig(method, int(rank), {}, training, method=method, method_params=own)

    @property
    def activation_choices(self) -> list[str]:
        """The ``activation`` parameter's choices (identity first when baselines need it)."""
        form = [FORM_CHOICE] if self.forms is not None else []
        if self.baseline and BASELINE_ACTIVATION not in self.activations:
            return [BASELINE_ACTIVATION, *self.activations, *form]
        return [*self.activations, *form]

    @property
    def excluded_for_candidates(self) -> set[str]:
        """Choices of ``activation`` that only baselines may take."""
        return set(self.activation_choices) - set(self.activations) - {FORM_CHOICE}

    def suggest(self, trial: Trial) -> TrialConfig:
        """Sample (or read the enqueued values of) one point, in a fixed order.

        With peer arms, ``method`` comes first; a peer's point is ``rank``, its own
        ``<method>.<setting>`` params and the training keys (no ``activation``).
        """
        if self.has_methods:
            method = trial.suggest_categorical(PARAM_METHOD, list(self.methods))
            if method != METHOD_LORAN:
                rank = trial.suggest_categorical("rank", list(self.ranks))
                own = {p: d.suggest(trial) for p, d in self.method_dims.get(method, {}).items()}
                training = {k: d.suggest(trial) for k, d in self.training.items()}
                return self._peer(method, int(rank), own, training)
        act = trial.suggest_categorical("activation", self.activation_choices)
        rank = trial.suggest_categorical("rank", list(self.ranks))
        params = {p: d.suggest(trial) for p, d in self.dims.get(act, {}).items()}
        training = {k: d.suggest(trial) for k, d in self.training.items()}
        if act == FORM_CHOICE and self.forms is not None:  # the tree, then its parameters
            act, params = self.forms.suggest(trial)
        return TrialConfig(act, int(rank), params, training)

    def config_of(self, params: Mapping[str, Any]) -> TrialConfig | None:
        """The configuration that trial ``params`` (queued or recorded) stand for.

        Read as :meth:`suggest` reads them: fixed parameters from the space; ``None`` when the
        activation, the rank or a searched parameter is missing.
        """
        method = params.get(PARAM_METHOD, METHOD_LORAN) if self.has_methods else METHOD_LORAN
        if method != METHOD_LORAN:
            rank = params.get("rank")
            if rank is None or method not in self.methods:
                return None
            own_m: dict[str, Any] = {}
            for p, d in self.method_dims.get(str(method), {}).items():
                if not d.searched:
                    own_m[p] = d.value
                elif d.name in params:
                    own_m[p] = params[d.name]
                else:
                    return None
            training_m = {
                k: d.value if not d.searched else params.get(d.name)
                for k, d in self.training.items()
            }
            return self._peer(str(method), int(rank), own_m, training_m)
        act, rank = params.get("activation"), params.get("rank")
        if not isinstance(act, str) or rank is None:
            return None
        if act == FORM_CHOICE and self.forms is not None:
            form = self.forms.config_of(params)
            if form is None:
                return None
            training = {
                k: d.value if not d.searched else params.get(d.name)
                for k, d in self.training.items()
            }
            return TrialConfig(form[0], int(rank), form[1], training)
        own: dict[str, Any] = {}
        for p, d in self.dims.get(act, {}).items():
            if not d.searched:
                own[p] = d.value
            elif d.name in params:
                own[p] = params[d.name]
            else:
                return None
        training = {
            k: d.value if not d.searched else params.get(d.name) for k, d in self.training.items()
        }
        return TrialConfig(act, int(rank), own, training)

    def first_configuration(self) -> TrialConfig:
        """The study's first configuration: what ``loran-search train`` runs.

        The first searched activation (a family name was expanded to its members, in order;
        an inline formula is registered by the loader), the first rank, and for each parameter
        its fixed value, the first of its choices, or (a range: the search samples it) its
        registry default. Searched training keys take their fixed value or first choice; a
        range leaves the ``training:`` value in force.

        Raises:
            SpaceError: The space has no activation or no rank.
        """
        if not self.activations and self.forms is None:
            raise SpaceError("search.activations is empty; name at least one activation.")
        if not self.ranks:
            raise SpaceError("search.rank is empty; give at least one rank.")
        if self.has_methods and self.methods[0] != METHOD_LORAN:
            first = self.methods[0]
            own = {
                p: d.value if d.kind == "fixed" else d.choices[0] if d.kind == "choices" else None
                for p, d in self.method_dims.get(first, {}).items()
            }
            return self._peer(
                first, int(self.ranks[0]), {k: v for k, v in own.items() if v is not None}, {}
            )
        params: dict[str, Any] = {}
        if not self.activations and self.forms is not None:  # a form search: its first form
            act, params = self.forms.first()
            training = {
                k: d.value if d.kind == "fixed" else d.choices[0]
                for k, d in self.training.items()
                if d.kind != "range"
            }
            return TrialConfig(act, int(self.ranks[0]), params, training)
        act = self.activations[0]
        for p, d in self.dims.get(act, {}).items():
            if d.kind == "fixed":
                params[p] = d.value
            elif d.kind == "choices":
                params[p] = d.choices[0]
            else:
                params[p] = self.param_defaults.get(act, {}).get(p)
        training = {
            k: d.value if d.kind == "fixed" else d.choices[0]
            for k, d in self.training.items()
            if d.kind != "range"
        }
        return TrialConfig(act, int(self.ranks[0]), params, training)

    def baseline_params(self, rank: int) -> dict[str, Any]:
        """The enqueued parameters of the identity baseline at ``rank``."""
        params: dict[str, Any] = {"activation": BASELINE_ACTIVATION, "rank": rank}
        if self.has_methods:
            params = {PARAM_METHOD: METHOD_LORAN, **params}
        for p, d in self.dims.get(BASELINE_ACTIVATION, {}).items():
            if d.searched:
                params[f"{BASELINE_ACTIVATION}.{p}"] = d.grid_values()[0]
        for k, d in self.training.items():
            if d.searched:
                params[f"training.{k}"] = _baseline_training_value(d, self.training_defaults.get(k))
        return params

    def plain_grid_size(self) -> int:
        """The number of grid points besides the forms', counted without making them.

        ``Σ_rank [Σ_activation Π_own |values| + Σ_peer Π_own |values|] · Π_training |values|``
        (the forms' points are bounded by their own tree cap,
        :data:`~loran_search.search.grammar.MAX_GRID_TREES`).

        Raises:
            SpaceError: A searched range without ``step`` or ``num``.
        """
        training = math.prod(d.grid_count() for d in self.training.values() if d.searched)
        per_rank = 0
        for act in self.activations if METHOD_LORAN in self.methods else []:
            per_rank += math.prod(
                d.grid_count() for d in self.dims.get(act, {}).values() if d.searched
            )
        for method in (m for m in self.methods if m != METHOD_LORAN):
            per_rank += math.prod(
                d.grid_count() for d in self.method_dims.get(method, {}).values() if d.searched
            )
        return len(self.ranks) * per_rank * training

    def grid(self) -> list[dict[str, Any]]:
        """Every grid point as enqueued trial parameters: ranks × activations × own params.

        The grid is conditional: an activation contributes the product of *its own* searched
        parameters' values only, so ``relu`` (no parameters) is one point per rank and never
        repeated for each ``sinter.amplitude``.

        Raises:
            SpaceError: A searched range without ``step`` or ``num``, or more than
                :data:`MAX_GRID_POINTS` points (:func:`grid_size_problem`), refused before any
                point is made.
        """
        problem = grid_size_problem(self.plain_grid_size())
        if problem:
            raise SpaceError(problem)
        points: list[dict[str, Any]] = []
        tr_names = [f"training.{k}" for k, d in self.training.items() if d.searched]
        tr_values = [d.grid_values() for d in self.training.values() if d.searched]
        tag = {PARAM_METHOD: METHOD_LORAN} if self.has_methods else {}
        for rank in self.ranks:
            for act in self.activations if METHOD_LORAN in self.methods else []:
                searched = [(p, d) for p, d in self.dims.get(act, {}).items() if d.searched]
                names = [f"{act}.{p}" for p, _ in searched] + tr_names
                values = [d.grid_values() for _, d in searched] + tr_values
                for combo in itertools.product(*values):
                    point = dict(zip(names, combo, strict=True))
                    points.append({**tag, "activation": act, "rank": rank, **point})
            for method in (m for m in self.methods if m != METHOD_LORAN):
                own = [d for d in self.method_dims.get(method, {}).values() if d.searched]
                names = [d.name for d in own] + tr_names
                values = [d.grid_values() for d in own] + tr_values
                for combo in itertools.product(*values):
                    point = dict(zip(names, combo, strict=True))
                    points.append({PARAM_METHOD: method, "rank": rank, **point})
            if self.forms is not None and METHOD_LORAN in self.methods:  # every form × its grid
                for form_point in self.forms.grid_points():
                    for combo in itertools.product(*tr_values):
                        point = dict(zip(tr_names, combo, strict=True))
                        points.append({**tag, **form_point, "rank": rank, **point})
        return points

    def describe(self) -> dict[str, Any]:
        """A JSON form of the space (compared on resume)."""
        out = {
            "activation": self.activation_choices,
            "rank": list(self.ranks),
            "params": {
                f"{a}.{p}": d.to_dict() for a, ds in self.dims.items() for p, d in ds.items()
            },
            "training": {f"training.{k}": d.to_dict() for k, d in self.training.items()},
            **self._describe_methods(),
        }
        if self.forms is not None:
            out["forms"] = self.forms.describe()
        return out

    def _describe_methods(self) -> dict[str, Any]:
        """The peer arms' part of :meth:`describe` (nothing for ``[loran]``: old studies resume)."""
        if not self.has_methods:
            return {}
        return {
            "method": list(self.methods),
            "match": self.match,
            "method_params": {
                d.name: d.to_dict() for ds in self.method_dims.values() for d in ds.values()
            },
        }


def _baseline_training_value(d: Dim, configured: Any = None) -> Any:
    """A baseline's value of a searched training hyperparameter.

    The ``training:`` section's value when the searched values admit it (inside the range, or
    one of the choices); otherwise the middle of the values: ``sqrt(low·high)`` of a log range,
    ``(low + high)/2`` of a linear one, the middle choice of a list. Baselines need one fixed
    value to be comparable run to run.
    """
    small = d.kind != "range" or not d.finite or d.grid_count() <= MAX_GRID_POINTS
    if _is_number(configured):
        if d.kind == "choices" and configured in d.choices:
            return configured
        if d.kind == "range" and d.finite and small and configured in d.grid_values():
            return configured
        if d.kind == "range" and not small and d.low <= configured <= d.high:  # type: ignore[operator]
            k = (configured - d.low) / d.step if d.step is not None else None  # type: ignore[operator]
            if k is None or abs(k - round(k)) < 1e-9:
                return configured  # on a grid too large to list (another sampler's `step`)
        if d.kind == "range" and not d.finite and d.low <= configured <= d.high:  # type: ignore[operator]
            return configured
    if d.kind == "choices":
        return d.choices[len(d.choices) // 2]
    if d.kind == "range":
        assert d.low is not None and d.high is not None
        if (d.num is not None or d.step is not None) and small:
            vals = d.grid_values()
            return vals[len(vals) // 2]
        if d.step is not None:  # the middle point of a grid too large to list, by its index
            mid = d.low + (d.grid_count() // 2) * d.step
            return round(mid) if d.integer else float(f"{mid:.12g}")
        mid = math.sqrt(d.low * d.high) if d.log else (d.low + d.high) / 2
        return round(mid) if d.integer else mid
    return d.value


def expand_param_keys(
    params: Mapping[str, Any], declared: Mapping[str, Sequence[str]]
) -> dict[str, tuple[str, Any]]:
    """Map every ``<activation>.<param>`` a ``search.params`` key covers to ``(key, raw)``.

    Glob keys (``sinter.*``) apply first, in file order; exact keys override them.

    Args:
        params: ``search.params`` as written.
        declared: ``{activation: [param names]}`` of the searched activations.
    """
    out: dict[str, tuple[str, Any]] = {}
    full = [f"{a}.{p}" for a, ps in declared.items() for p in ps]
    for key, raw in params.items():
        if any(c in key for c in "*?["):
            for name in fnmatch.filter(full, key):
                if name not in out or any(c in out[name][0] for c in "*?["):
                    out[name] = (key, raw)
    for key, raw in params.items():
        if not any(c in key for c in "*?[") and key in full:
            out[key] = (key, raw)
    return out


def build_space(cfg: StudyConfig) -> SearchSpace:
    """Build the :class:`SearchSpace` of a validated config (see :func:`load_config`).

    Raises:
        SpaceError: An entry that :func:`~loran_search.search.validate.load_config` refuses.
    """
    from loran_search.activations import get_spec, resolve_names

    names = [a if isinstance(a, str) else a.name for a in cfg.search.activations]
    acts = resolve_names(names, "search.activations")
    specs = {a: get_spec(a) for a in acts}
    if cfg.study.baseline:
        specs.setdefault(BASELINE_ACTIVATION, get_spec(BASELINE_ACTIVATION))
    covered = expand_param_keys(cfg.search.params, {a: list(s.params) for a, s in specs.items()})
    dims: dict[str, dict[str, Dim]] = {}
    for a, spec in specs.items():
        dims[a] = {}
        for p, decl in spec.params.items():
            full = f"{a}.{p}"
            if full in covered:
                dims[a][p] = parse_dim(full, covered[full][1], decl)
            else:
                dims[a][p] = Dim(full, "fixed", value=decl.default, integer=decl.integer)
    training: dict[str, Dim] = {}
    for key, raw in cfg.search.training.items():
        kind = training_key_kind(key)
        if kind is None:
            raise SpaceError(
                f"'training.{key}' is not a numeric key of {TrainingSection.__name__}."
            )
        training[key] = parse_dim(f"training.{key}", raw, None, integer=kind is int)
    ranks = list(dict.fromkeys(int(r) for r in cfg.search.rank))
    defaults = {k: getattr(cfg.training, k, None) for k in training}
    methods = list(dict.fromkeys(cfg.search.methods or [METHOD_LORAN]))
    forms = None
    if cfg.search.forms is not None:
        from loran_search.record import FORM_PREFIX
        from loran_search.search.forms import FormSpace

        raw_params = cfg.search.forms.get("params") or {}
        forms = FormSpace(
            cfg.search.forms,
            {p: parse_dim(f"{FORM_PREFIX}.{p}", r, None) for p, r in raw_params.items()},
        )
    return SearchSpace(
        acts,
        ranks,
        dims,
        training,
        baseline=cfg.study.baseline,
        training_defaults=defaults,
        param_defaults={a: {p: d.default for p, d in s.params.items()} for a, s in specs.items()},
        methods=methods,
        method_dims=method_dims(methods, cfg.search.params),
        match=cfg.search.match,
        forms=forms,
    )


def method_dims(methods: Sequence[str], params: Mapping[str, Any]) -> dict[str, dict[str, Dim]]:
    """``{method: {setting: Dim}}`` of the peer arms from ``search.params``.

    A key ``<method>.<setting>`` (or a glob ``dora.*``) takes the forms of an activation
    parameter: a plain value (fixed), a list (choices) or a range (numeric settings only; the
    method's declared range bounds it). An unlisted setting is fixed at peft's default.

    Raises:
        SpaceError: A key naming no setting, or a value its setting does not admit.
    """
    from loran_search.methods import METHODS

    peers = [m for m in methods if m != METHOD_LORAN and m in METHODS]
    declared = {m: list(METHODS[m].settings) for m in peers}
    covered = expand_param_keys(params, declared)
    out: dict[str, dict[str, Dim]] = {}
    for m in peers:
        out[m] = {}
        for name, setting in METHODS[m].settings.items():
            full = f"{m}.{name}"
            raw = covered[full][1] if full in covered else None
            out[m][name] = parse_setting_dim(full, raw, setting)
    return out


def parse_setting_dim(name: str, raw: Any, setting: Any) -> Dim:
    """One method setting's :class:`Dim` (``raw`` ``None``: fixed at its default).

    Raises:
        SpaceError: A value outside the setting's range or choices.
    """
    if raw is None:
        return Dim(name, "fixed", value=setting.default, integer=setting.integer)
    if setting.categorical:
        vals = raw if isinstance(raw, list) else [raw]
        bad = [v for v in vals if v not in setting.choices]
        if bad or not vals or isinstance(raw, Mapping):
            raise SpaceError(
                f"'{name}' takes one of {', '.join(setting.choices)} (a value, or a list of them "
                f"to search), but got {raw!r}."
            )
        if len(vals) == 1:
            return Dim(name, "fixed", value=vals[0])
        return Dim(name, "choices", choices=tuple(dict.fromkeys(vals)))
    from loran_search.activations import Param

    declared = Param(
        setting.default, low=setting.low, high=setting.high, log=setting.log,
        integer=setting.integer,
    )  # fmt: skip
    try:
        return parse_dim(name, raw, declared)
    except SpaceError as err:  # the activation wording's hint does not apply to a method
        wider = "(the range is this project's, around peft's documented default)"
        text = str(err)
        for hint in (
            "(or register a variant of the activation with a wider range)",
            "(or register a variant with a wider range)",
        ):
            text = text.replace(hint, wider)
        raise SpaceError(text) from None
