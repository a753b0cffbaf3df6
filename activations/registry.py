"""The activation registry: named, parametric, element-wise functions ``f`` for ``ΔW = s·f(B·A)``.

An activation is registered once under a unique name, with a family, a declared parameter space
(every parameter has a default and a search range) and its sympy expression::

    @register_activation("sinter", family="sinter",
                         params={"amplitude": Param(5e-5, low=1e-7, high=1e-2, log=True),
                                 "frequency": Param(1e4, low=1e1, high=1e5, log=True)},
                         expr="x + amplitude*x*sin(frequency*x)")
    def sinter(x, amplitude, frequency):
        return x + amplitude * x * torch.sin(frequency * x)

``get_activation("sinter", amplitude=1e-3)`` returns a :class:`BoundActivation`: a callable
``Tensor -> Tensor`` with every parameter resolved (omitted ones take their defaults) and checked
against the declared ranges. Layers hold that callable and never know activation names.

The registry imports neither torch nor any training code: the family modules reach torch
through :mod:`activations._lazy`, so listing and auditing stay fast.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib
import inspect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

ENTRY_POINT_GROUP = "loran_search.activations"


class ActivationError(ValueError):
    """Raised for every misuse of the registry: unknown names, bad parameters, duplicates."""


@dataclass(frozen=True)
class Param:
    """One parameter of an activation: its default and the range a search may sample.

    Args:
        default: Value used when the parameter is not given.
        low: Smallest admissible value (inclusive).
        high: Largest admissible value (inclusive).
        log: Sample on a log scale (requires ``low > 0``).
        integer: The parameter is an integer (a degree, a number of terms).
        doc: One line saying what the parameter means.
    """

    default: float
    low: float
    high: float
    log: bool = False
    integer: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ActivationError(
                f"`low <= high` must hold, but got (low={self.low}, high={self.high})."
            )
        if self.log and self.low <= 0:
            raise ActivationError(f"`log=True` needs `low > 0`, but got low={self.low}.")
        if not self.low <= self.default <= self.high:
            raise ActivationError(
                f"The default {self.default} lies outside [{self.low}, {self.high}]."
            )
        if self.integer and any(float(v) != int(v) for v in (self.default, self.low, self.high)):
            raise ActivationError(
                "An `integer=True` parameter needs integer default, low and high, but got "
                f"(default={self.default}, low={self.low}, high={self.high})."
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``activations list --format json``."""
        out: dict[str, Any] = {
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "log": self.log,
        }
        if self.integer:
            out["integer"] = True
        return out


@dataclass(frozen=True)
class ActivationSpec:
    """A registered activation.

    Attributes:
        name: Unique registry name.
        family: Family name (``baseline``, ``sinter``, ``fourier``, ``orthogonal``, ...).
        fn: ``fn(x, **params) -> Tensor``, element-wise and differentiable.
        params: Declared parameters.
        expr: Sympy form of the same function, in ``x`` and the parameter names.
        module: Module that registered it (named in duplicate-registration errors).
        doc: First paragraph of the function's docstring.
    """

    name: str
    family: str
    fn: Callable[..., Tensor]
    params: Mapping[str, Param]
    expr: str
    module: str
    doc: str = ""

    def resolve(self, **params: float) -> dict[str, float]:
        """Return every parameter value, defaults filled in, after checking names and ranges.

        Raises:
            ActivationError: An unknown parameter, a non-finite or out-of-range value, or a
                non-integer value for an integer parameter. The message names the valid ones.
        """
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "none"
            hint = ""
            close = difflib.get_close_matches(unknown[0], list(self.params), n=1)
            if close:
                hint = f" Did you mean '{close[0]}'?"
            raise ActivationError(
                f"Activation '{self.name}' has no parameter {', '.join(map(repr, unknown))}."
                f"{hint} Its parameters are: {valid}."
            )
        resolved: dict[str, float] = {}
        for pname, p in self.params.items():
            value = params.get(pname, p.default)
            try:
                fvalue = float(value)
            except (TypeError, ValueError):
                raise ActivationError(
                    f"Parameter '{self.name}.{pname}' must be a number, but got {value!r}."
                ) from None
            if not math.isfinite(fvalue) or not p.low <= fvalue <= p.high:
                raise ActivationError(
                    f"Parameter '{self.name}.{pname}' = {value!r} is outside its declared range "
                    f"[{p.low}, {p.high}] (default {p.default})."
                )
            if p.integer:
                if fvalue != int(fvalue):
                    raise ActivationError(
                        f"Parameter '{self.name}.{pname}' is an integer, but got {value!r}."
                    )
                resolved[pname] = int(fvalue)
            else:
                resolved[pname] = fvalue
        return resolved

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{name, family, expr, params: {p: {default, low, high, log}}}``."""
        return {
            "name": self.name,
            "family": self.family,
            "expr": self.expr,
            "params": {k: p.to_dict() for k, p in self.params.items()},
        }


class BoundActivation:
    """An activation with every parameter fixed: ``f(x) = spec.fn(x, **params)``.

    It is what the LoRAN layers hold. It is picklable (it pickles as its name and parameters)
    and compares equal to another with the same name and parameters.
    """

    __slots__ = ("params", "spec")

    def __init__(self, spec: ActivationSpec, params: dict[str, float]) -> None:
        self.spec = spec
        self.params = params

    @property
    def name(self) -> str:
        """Registry name."""
        return self.spec.name

    @property
    def family(self) -> str:
        """Family name."""
        return self.spec.family

    @property
    def is_identity(self) -> bool:
        """Whether ``f`` is the identity (LoRAN is then exactly LoRA)."""
        return self.spec.name == "identity"

    def __call__(self, x: Tensor) -> Tensor:
        """``f(x)``, element-wise."""
        return self.spec.fn(x, **self.params)

    def to_dict(self) -> dict[str, Any]:
        """``{name, family, params}`` — the ``activation_spec`` of a trial record."""
        return {"name": self.name, "family": self.family, "params": dict(self.params)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BoundActivation):
            return NotImplemented
        return self.name == other.name and self.params == other.params

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.params.items()))))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.name, self.params))


def _rebuild(name: str, params: dict[str, float]) -> BoundActivation:
    return get_activation(name, **params)


@dataclass
class _Registry:
    specs: dict[str, ActivationSpec] = field(default_factory=dict)
    builtins_loaded: bool = False
    entry_points_loaded: bool = False


_REGISTRY = _Registry()
#: The built-in family modules, relative to this package: the package may be imported as
#: ``activations`` or, where a user's ``activations.py`` shadows that name, as
#: ``loran_search.activations`` (see ``loran_search/activations.py``).
_BUILTIN_MODULES = (".baselines", ".sinter", ".fourier", ".orthogonal", ".peers")


def _ensure_builtins() -> None:
    if _REGISTRY.builtins_loaded:
        return
    _REGISTRY.builtins_loaded = True
    for rel in _BUILTIN_MODULES:
        mod = __package__ + rel
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:  # a family module not written yet
            if err.name != mod:
                raise


def register_activation(
    name: str,
    *,
    family: str,
    params: Mapping[str, Param] | None = None,
    expr: str,
    force: bool = False,
) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Register ``fn(x, **params)`` as an activation.

    Args:
        name: Unique name (lowercase letters, digits, ``_`` and ``-``).
        family: Family the activation belongs to; a search may name a whole family.
        params: Declared parameters; the function's keyword arguments after ``x`` must match.
        expr: The same function in sympy syntax, in ``x`` and the parameter names.
        force: Replace an existing registration of ``name`` instead of refusing.

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        ActivationError: The name is taken (the message names both modules), malformed, or the
            function's signature does not match ``params``.
    """
    params = dict(params or {})

    def decorator(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        register(
            ActivationSpec(
                name=name,
                family=family,
                fn=fn,
                params=params,
                expr=expr,
                module=getattr(fn, "__module__", "<unknown>"),
                doc=inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0],
            ),
            force=force,
        )
        return fn

    return decorator


def register(spec: ActivationSpec, *, force: bool = False) -> ActivationSpec:
    """Register a ready-made :class:`ActivationSpec` (used by the decorator and by formulas).

    Raises:
        ActivationError: As for :func:`register_activation`.
    """
    if not spec.name or not all(c.isalnum() or c in "_-" for c in spec.name):
        raise ActivationError(
            f"Invalid activation name {spec.name!r}: use letters, digits, '_' and '-' only."
        )
    if "." in spec.family or not spec.family:
        raise ActivationError(f"Invalid family name {spec.family!r} for '{spec.name}'.")
    try:
        sig = inspect.signature(spec.fn)
    except (TypeError, ValueError):  # builtins without a signature: trust the declaration
        sig = None
    if sig is not None:
        names = list(sig.parameters)[1:]
        accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        if not accepts_kwargs and sorted(names) != sorted(spec.params):
            raise ActivationError(
                f"Activation '{spec.name}' ({spec.module}): the function's parameters after x "
                f"{names} do not match the declared params {sorted(spec.params)}."
            )
    existing = _REGISTRY.specs.get(spec.name)
    if existing is not None and not force:
        raise ActivationError(
            f"Activation '{spec.name}' is already registered by module '{existing.module}'; "
            f"module '{spec.module}' tried to register it again. Choose another name, or pass "
            "force=True to replace it."
        )
    _REGISTRY.specs[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (used for study-local formulas and in tests)."""
    _REGISTRY.specs.pop(name, None)


def get_spec(name: str) -> ActivationSpec:
    """The :class:`ActivationSpec` registered under ``name``.

    Raises:
        ActivationError: Unknown name; the message suggests the closest names and says how to
            list and register activations.
    """
    _ensure_builtins()
    _load_entry_points()
    try:
        return _REGISTRY.specs[name]
    except KeyError:
        raise ActivationError(unknown_activation_message(name)) from None


def find_spec(name: str) -> ActivationSpec | None:
    """The :class:`ActivationSpec` registered under ``name``, or ``None`` when there is none.

    :func:`get_spec` without the error, for code that asks whether a name is taken (built-ins
    and plugins are loaded first, as for every lookup by name).
    """
    _ensure_builtins()
    _load_entry_points()
    return _REGISTRY.specs.get(name)


def unknown_activation_message(name: str, where: str = "") -> str:
    """The error for an unknown activation ``name`` (``where`` locates it, e.g. a YAML path)."""
    _ensure_builtins()
    _load_entry_points()
    candidates = list(dict.fromkeys([*_REGISTRY.specs, *sorted(families())]))
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    loc = f" in {where}" if where else ""
    return (
        f"Unknown activation {name!r}{loc}.{hint} `loran-search activations list` shows the "
        "registered ones; register your own with @register_activation and list its module "
        "under `imports:` (or pass --import MODULE)."
    )


def get_activation(name: str, **params: float) -> BoundActivation:
    """Build the activation ``name`` with ``params`` (omitted ones take their defaults).

    Args:
        name: Registry name.
        **params: Parameter values; each must be declared and inside its range.

    Returns:
        A callable ``Tensor -> Tensor`` with the resolved parameters in ``.params``.

    Raises:
        ActivationError: Unknown name or bad parameters, naming the valid ones.
    """
    spec = get_spec(name)
    return BoundActivation(spec, spec.resolve(**params))


def list_activations(family: str | None = None, pattern: str | None = None) -> list[str]:
    """Sorted registry names, optionally restricted to a family and a glob ``pattern``.

    Raises:
        ActivationError: ``family`` names no family.
    """
    _ensure_builtins()
    _load_entry_points()
    if family is not None and family not in families():
        close = difflib.get_close_matches(family, sorted(families()), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ActivationError(
            f"Unknown family {family!r}.{hint} Families: {', '.join(sorted(families()))}."
        )
    names = (
        n
        for n, s in _REGISTRY.specs.items()
        if (family is None or s.family == family)
        and (pattern is None or fnmatch.fnmatchcase(n, pattern))
    )
    return sorted(names)


def families() -> set[str]:
    """Every family that has at least one registered activation (plugins included)."""
    _ensure_builtins()
    _load_entry_points()
    return {s.family for s in _REGISTRY.specs.values()}


def resolve_names(names: Iterable[str], where: str = "") -> list[str]:
    """Expand a list of activation or family names into activation names, order kept.

    Raises:
        ActivationError: A name that is neither an activation nor a family.
    """
    _ensure_builtins()
    _load_entry_points()
    out: list[str] = []
    fams = families()
    for n in names:
        if n in _REGISTRY.specs:
            items = [n]
        elif n in fams:
            items = list_activations(family=n)
        else:
            raise ActivationError(unknown_activation_message(n, where))
        out.extend(i for i in items if i not in out)
    return out


#: The lists of :func:`recording_plugin_imports` blocks now open.
_PLUGIN_RECORDERS: list[list[str]] = []


@contextlib.contextmanager
def recording_plugin_imports() -> Iterator[list[str]]:
    """Collect the module names :func:`load_plugins` is asked to import while the block runs.

    Importing a module executes its code: ``loran-search validate`` uses this to name the
    modules a study file's ``imports:`` made it run (each name once per request, in order,
    also when the import failed or the module was already imported).
    """
    seen: list[str] = []
    _PLUGIN_RECORDERS.append(seen)
    try:
        yield seen
    finally:
        _PLUGIN_RECORDERS.remove(seen)


def load_plugins(modules: Iterable[str]) -> list[str]:
    """Import ``modules`` so that their ``@register_activation`` calls run.

    Importing executes the modules' code, with this process's permissions: list only modules
    you trust (see "What runs code" in the README).

    Returns:
        The names registered by these imports.

    Raises:
        ActivationError: A module cannot be imported (the message says which and why).
    """
    _ensure_builtins()
    before = set(_REGISTRY.specs)
    for mod in modules:
        for seen in _PLUGIN_RECORDERS:
            seen.append(mod)
        try:
            importlib.import_module(mod)
        except ImportError as err:
            raise ActivationError(
                f"Cannot import activation plugin module {mod!r}: {err}. Make sure it is on "
                "PYTHONPATH (or installed) and spelled as a dotted module name."
            ) from err
    return sorted(set(_REGISTRY.specs) - before)


def _load_entry_points() -> None:
    """Import installed plugins that declare the ``loran_search.activations`` entry-point group."""
    if _REGISTRY.entry_points_loaded:
        return
    _REGISTRY.entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as err:
            raise ActivationError(
                f"The activation plugin entry point {ep.name!r} ({ep.value}) of group "
                f"{ENTRY_POINT_GROUP!r} failed to load: {err}. Fix or uninstall that package."
            ) from err
