"""Search validates its own checks: the ``search:`` section and the study's sampler/pruner.

:mod:`loran_search.config` knows the schema of a study file (sections, keys, types, the YAML line
of every key, ``--set`` overrides); the *meaning* of the search space lives here and in
:mod:`loran_search.search.space`. :func:`load_config` composes the two, so every error of a file
(schema and search alike) is reported at once, each as ``FILE:LINE dotted.path: message``:

* ``search.activations``: registry names, family names or inline formulas (registered for the
  study through the safe parser), with a did-you-mean for unknown names;
* ``search.rank``, ``search.params`` (exact and glob keys, against each activation's declared
  parameters and ranges; a grid needs finite dimensions), ``search.training`` (numeric keys of
  ``training:`` only);
* ``study.sampler`` / ``study.pruner``: names from the one table
  (:mod:`loran_search.search.samplers`), their arguments bound against the Optuna class's
  signature, and the combinations a multi-objective study cannot use.

Nothing is created or written: no storage, no directory; only ``imports:`` modules are imported
and inline formulas registered.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loran_search.config import (
    ConfigError,
    Context,
    InlineActivation,
    StudyConfig,
    TrainingSection,
    check_fields,
    check_study_section,
    did_you_mean,
    dotted,
    parse_study,
    training_key_kind,
)
from loran_search.search.space import (
    SpaceError,
    expand_param_keys,
    grid_needs_finite_message,
    parse_dim,
)

SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "nsga2")
PRUNERS = ("none", "median", "hyperband", "successive_halving", "wilcoxon")
GRID_KWARGS = ("seed", "shuffle")


def _sampler_classes() -> dict[str, Any]:
    import optuna

    return {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }


def _pruner_classes() -> dict[str, Any]:
    import optuna

    return {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "wilcoxon": optuna.pruners.WilcoxonPruner,
    }


def _check_component(
    ctx: Context,
    path: tuple[str, ...],
    spec: Any,
    kind: str,
    names: Sequence[str],
    classes: dict[str, Any] | None,
) -> str | None:
    """Check ``{name: …, **kwargs}`` of a sampler or pruner; return the name when valid."""
    import inspect

    if not isinstance(spec, dict):
        ctx.err(path, f"`{path[-1]}` must be a mapping like {{name: {names[0]}}}, got {spec!r}.")
        return None
    name = spec.get("name")
    if name is None:
        ctx.err(path, f"`{path[-1]}` needs `name:`, one of {', '.join(names)}.")
        return None
    if name not in names:
        ctx.err(
            (*path, "name"),
            f"Unknown {kind} {name!r}.{did_you_mean(name, names)} Choose one of: "
            f"{', '.join(names)}.",
        )
        return None
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if classes is None:  # the grid sampler is ours: it enumerates the space (see search.study)
        bad = sorted(set(kwargs) - set(GRID_KWARGS))
        if bad:
            ctx.err(
                (*path, bad[0]),
                f"The grid sampler takes no argument '{bad[0]}'."
                f"{did_you_mean(bad[0], GRID_KWARGS)} It takes: {', '.join(GRID_KWARGS)}.",
            )
            return None
        return name
    cls = classes[name]
    sig = inspect.signature(cls)
    try:
        sig.bind(**kwargs)
    except TypeError as err:
        valid = [p for p in sig.parameters if p != "self"]
        bad = next((k for k in kwargs if k not in sig.parameters), None)
        where = (*path, bad) if bad else path
        hint = did_you_mean(bad, valid) if bad else ""
        ctx.err(
            where,
            f"{cls.__name__} does not accept these arguments ({err}).{hint} It takes: "
            f"{', '.join(valid)}.",
        )
        return None
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**kwargs)
    except Exception as err:
        ctx.err(path, f"{cls.__name__}({kwargs}) cannot be built: {err}")
        return None
    return name


_INLINE_REGISTERED: dict[str, tuple[str, str, str]] = {}


def _register_inline(entry: dict[str, Any], path: tuple[Any, ...], ctx: Context) -> str | None:
    """Register an inline ``{name, expr, params, family}`` activation; return its name."""
    allowed = ("name", "expr", "params", "family")
    for key in entry:
        if key not in allowed:
            ctx.err(
                (*path, key),
                f"Unknown key '{key}' in an inline activation.{did_you_mean(key, allowed)} An "
                "inline activation takes name, expr, params, family.",
            )
            return None
    name, expr = entry.get("name"), entry.get("expr")
    params = entry.get("params") or {}
    family = entry.get("family", "custom")
    if not isinstance(name, str) or not name:
        ctx.err((*path, "name"), "An inline activation needs `name:` (a string).")
        return None
    if not isinstance(expr, str) or not expr:
        ctx.err((*path, "expr"), f"Inline activation '{name}' needs `expr:`, e.g. 'x + a*x'.")
        return None
    if not isinstance(params, dict) or not isinstance(family, str):
        ctx.err(path, f"Inline activation '{name}': `params` must be a mapping, `family` a string.")
        return None
    from activations import ActivationError, registry

    signature = (expr, repr(sorted(params.items(), key=str)), family)
    existing = registry._REGISTRY.specs.get(name)
    if existing is not None and _INLINE_REGISTERED.get(name) == signature:
        return name
    if existing is not None and name not in _INLINE_REGISTERED:
        ctx.err(
            (*path, "name"),
            f"Inline activation '{name}' clashes with the registered activation '{name}' "
            f"(module {existing.module}); choose another name.",
        )
        return None
    try:
        from activations import symbolic
    except ImportError as err:
        ctx.err(path, f"Inline formulas need activations.symbolic, which cannot be imported: {err}")
        return None
    try:
        symbolic.register_formula(name, expr, params, family=family, force=existing is not None)
    except symbolic.FormulaError as err:
        col = getattr(err, "column", None)
        at = f" (at column {col} of the formula)" if col else ""
        ctx.err((*path, "expr"), f"Inline activation '{name}': {err}{at}")
        return None
    except (ActivationError, ValueError, TypeError) as err:
        ctx.err(path, f"Inline activation '{name}': {err}")
        return None
    _INLINE_REGISTERED[name] = signature
    return name


def check_search_section(
    raw: dict[str, Any], sections: dict[str, dict[str, Any]], ctx: Context
) -> dict[str, Any]:
    """``search:``: activations, rank, params and training against the registry.

    Args:
        raw: The ``search:`` mapping as written (after overrides).
        sections: The sections checked before it (``study`` gives the sampler: a grid needs
            finite dimensions).
        ctx: Collects every error with its location.

    Returns:
        The checked values of ``search:`` (inline activations registered for the study).
    """
    spec = sections.get("study", {}).get("sampler", {"name": "tpe"})
    sampler = spec.get("name") if isinstance(spec, dict) else None
    from activations import ActivationError, get_spec, resolve_names

    values = check_fields("search", raw, ctx, skip=("activations", "params", "training"))
    acts_raw = values.get("activations", ["sinter"])
    if not isinstance(acts_raw, list):
        acts_raw = [acts_raw]
    if not acts_raw:
        ctx.err(("search", "activations"), "`activations` is empty; name at least one.")
    acts: list[str] = []
    entries: list[str | InlineActivation] = []
    failed_entries = False
    for i, entry in enumerate(acts_raw):
        path = ("search", "activations", i)
        if isinstance(entry, dict):
            name = _register_inline(entry, path, ctx)
            if name is None:
                failed_entries = True
            else:
                acts.append(name)
                entries.append(
                    InlineActivation(
                        name=name,
                        expr=entry["expr"],
                        params=dict(entry.get("params") or {}),
                        family=entry.get("family", "custom"),
                    )
                )
        elif isinstance(entry, str):
            try:
                names = resolve_names([entry], f"{ctx.file} ({dotted(path)})")
            except ActivationError:
                from activations.registry import unknown_activation_message

                ctx.err(path, unknown_activation_message(entry))
                failed_entries = True
                continue
            acts.extend(n for n in names if n not in acts)
            entries.append(entry)
        else:
            ctx.err(
                path,
                f"An activation entry must be a name or {{name, expr, params}}, got {entry!r}.",
            )
    values["activations"] = entries

    ranks = values.get("rank", [8])
    for i, r in enumerate(ranks if isinstance(ranks, list) else []):
        if isinstance(r, int) and r < 1:
            ctx.err(("search", "rank", i), f"A rank must be >= 1, but got {r}.")
    if isinstance(ranks, list) and not ranks:
        ctx.err(("search", "rank"), "`rank` is empty; give at least one rank, e.g. [8].")

    grid = sampler == "grid"
    specs = {}
    for a in acts:
        with contextlib.suppress(ActivationError):
            specs[a] = get_spec(a)
    params = values.get("params") or {}
    if not isinstance(params, dict):
        ctx.err(("search", "params"), f"`params` must be a mapping, got {params!r}.")
        params = {}
    declared = {a: list(s.params) for a, s in specs.items()}
    covered = expand_param_keys(params, declared)
    narrowed = ("search", "activations") in ctx.overridden
    for key in list(params):
        path = ("search", "params", key)
        if not isinstance(key, str):
            ctx.err(path, f"A parameter key must be '<activation>.<param>', got {key!r}.")
            continue
        if any(c in key for c in "*?["):
            if not any(k == key for k, _ in covered.values()):
                ctx.err(path, f"'{key}' matches no parameter of the searched activations.")
            continue
        act, dot, pname = key.partition(".")
        if not dot or not pname:
            ctx.err(path, f"'{key}' must be '<activation>.<param>', e.g. sinter.amplitude.")
            continue
        if act not in specs:
            if failed_entries:
                continue  # already reported: an unknown name in search.activations
            try:
                get_spec(act)
                if narrowed and not any(o[:3] == ("search", "params", key) for o in ctx.overridden):
                    # `--set search.activations=[identity]` on a Sinter study: the file's
                    # settings for activations the command line dropped no longer apply.
                    del params[key]
                    continue
                ctx.err(
                    path,
                    f"'{key}' sets a parameter of '{act}', which is not in search.activations "
                    f"({', '.join(acts) or 'none'}); add '{act}' there or remove this entry.",
                )
            except ActivationError:
                from activations.registry import unknown_activation_message

                ctx.err(path, unknown_activation_message(act))
            continue
        if pname not in specs[act].params:
            valid = ", ".join(specs[act].params) or "none"
            ctx.err(
                path,
                f"Activation '{act}' has no parameter '{pname}'."
                f"{did_you_mean(pname, list(specs[act].params))} Its parameters: {valid}.",
            )
    for full, (key, raw_dim) in covered.items():
        act, _, pname = full.partition(".")
        path = ("search", "params", key)
        try:
            dim = parse_dim(full, raw_dim, specs[act].params[pname])
        except SpaceError as err:
            ctx.err(path, str(err))
            continue
        if grid and not dim.finite:
            ctx.err(path, grid_needs_finite_message(full))

    training = values.get("training") or {}
    if not isinstance(training, dict):
        ctx.err(("search", "training"), f"`training` must be a mapping, got {training!r}.")
        training = {}
    numeric = [k for k in typing.get_type_hints(TrainingSection) if training_key_kind(k)]
    for key, raw_dim in training.items():
        path = ("search", "training", key)
        kind = training_key_kind(str(key))
        if kind is None:
            ctx.err(
                path,
                f"'{key}' is not a numeric training key.{did_you_mean(key, numeric)} "
                f"Searchable keys: {', '.join(numeric)}.",
            )
            continue
        try:
            dim = parse_dim(f"training.{key}", raw_dim, None, integer=kind is int)
        except SpaceError as err:
            ctx.err(path, str(err))
            continue
        if grid and not dim.finite:
            ctx.err(path, grid_needs_finite_message(f"training.{key}"))
    values["params"] = params
    values["training"] = training
    return values


def check_study(
    raw: dict[str, Any], sections: dict[str, dict[str, Any]], ctx: Context
) -> dict[str, Any]:
    """``study:``: the schema's checks, then the sampler and pruner (see the module doc)."""
    study = check_study_section(raw, sections, ctx)
    multi = bool(study.get("objectives", []))
    sampler_spec = study.get("sampler", {"name": "tpe", "seed": 0})
    is_grid = isinstance(sampler_spec, dict) and sampler_spec.get("name") == "grid"
    sampler = _check_component(
        ctx,
        ("study", "sampler"),
        sampler_spec,
        "sampler",
        SAMPLERS,
        None if is_grid else _sampler_classes(),
    )
    pruner = _check_component(
        ctx,
        ("study", "pruner"),
        study.get("pruner", {"name": "median"}),
        "pruner",
        PRUNERS,
        _pruner_classes(),
    )
    if multi and sampler == "cmaes":
        ctx.err(
            ("study", "sampler", "name"),
            "The cmaes sampler optimises one objective, but study.objectives makes this study "
            "multi-objective; use nsga2, tpe or gp, or remove study.objectives.",
        )
    if multi and pruner not in (None, "none"):
        ctx.err(
            ("study", "pruner", "name"),
            "Optuna cannot prune multi-objective studies; set pruner: {name: none} or remove "
            "study.objectives.",
        )
    return study


#: The section checks this module adds to the schema's (see ``config.parse_study``).
CHECKS = {"study": check_study, "search": check_search_section}


def validate_file(path: str | Path, overrides: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Every error of a study file (after overrides) as ``(location, message)`` pairs.

    ``location`` reads ``FILE:LINE dotted.path`` (``FILE:LINE:COLUMN`` for YAML syntax errors,
    ``--set KEY (dotted.path)`` for an override). Nothing is created or written: no storage,
    no directory; only ``imports:`` modules are imported and inline formulas registered.
    """
    return parse_study(path, overrides, checks=CHECKS)[1]


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """Read, override and validate a study file.

    Args:
        path: The study YAML.
        overrides: ``key.path=value`` strings (see :func:`loran_search.config.apply_overrides`).

    Raises:
        ConfigError: Every error found, each with its location and a fix.
    """
    cfg, errors = parse_study(path, overrides, checks=CHECKS)
    if errors or cfg is None:
        raise ConfigError(errors)
    return cfg


def load_config_text(text: str, overrides: Sequence[str] = ()) -> StudyConfig:
    """Like :func:`load_config` for YAML text (used by tests and notebooks)."""
    cfg, errors = parse_study(None, overrides, text=text, checks=CHECKS)
    if errors or cfg is None:
        raise ConfigError(errors)
    return cfg
