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
* ``search.forms``: the grammar (:func:`loran_search.search.grammar.check_grammar`: the template
  and leaves through the safe parser, operators, depth, require) and its ``params`` as
  ``form.<param>`` dimensions (:func:`check_forms_section`);
* ``study.confirm``: ``{top_k ≥ 1, seeds disjoint from study.seeds, split ≠ task.eval_split}``
  or ``false`` (:mod:`loran_search.search.confirm`);
* ``study.sampler`` / ``study.pruner``: names from the one table
  (:mod:`loran_search.search.samplers`), their arguments bound against the Optuna class's
  signature, and the combinations a multi-objective study cannot use.

It also checks, for ``validate``, ``run`` and ``train`` alike (they all load through
:func:`load_config`), what the lower layers can say before any weight is loaded:

* ``study.metric`` against the metrics of ``task.type`` (:data:`loran_search.tasks.TASK_METRICS`)
  and a summarization's ``max_new_tokens < max_length``;
* with ``environment`` (the default; see :func:`checks`): ``model.device`` (``cuda`` needs CUDA
  here), ``model.name`` (it must resolve), ``adapter.target_modules`` and ``search.rank`` against
  the model's linear layers and ``task.max_length`` against its context, read from its config
  on the ``meta`` device (:func:`loran_search.models.describe_model`; skipped when that is not
  cheap and offline, and then checked by the run after loading), and the data source
  (:func:`loran_search.tasks.check_source`).

Nothing of the study is created or written: no storage, no directory; only ``imports:`` modules
are imported and inline formulas registered (reading a model's layers may build the cheap
glassllm asset and caches what it read in the asset cache).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loran_search.config import (
    INLINE_KEYS,
    ConfigError,
    Context,
    InlineActivation,
    ModelSection,
    SectionCheck,
    StudyConfig,
    TaskSection,
    TrainingSection,
    check_fields,
    check_study_section,
    did_you_mean,
    dotted,
    non_finite,
    parse_study,
    training_key_kind,
    unknown_key_problems,
)
from loran_search.search.samplers import PRUNERS, SAMPLERS, Component
from loran_search.search.space import expand_param_keys, parse_dim
from loran_search.search.types import SpaceError, grid_needs_finite_message


def _check_component(
    ctx: Context,
    path: tuple[str, ...],
    spec: Any,
    kind: str,
    table: Mapping[str, Component],
) -> Component | None:
    """Check ``{name: …, **kwargs}`` of a sampler or pruner; return its row when valid.

    The name must be a row of the table (:mod:`loran_search.search.samplers`); the keyword
    arguments are bound against the row's accepted arguments (the Optuna class's signature, or
    the grid's own list) and the object is built once with the row's defaults, as the search
    would build it.
    """
    import inspect
    import warnings

    names = list(table)
    if not isinstance(spec, dict):
        ctx.err(path, f"`{path[-1]}` must be a mapping like {{name: {names[0]}}}, got {spec!r}.")
        return None
    name = spec.get("name")
    if name is None:
        ctx.err(path, f"`{path[-1]}` needs `name:`, one of {', '.join(names)}.")
        return None
    row = table.get(name) if isinstance(name, str) else None
    if row is None:
        ctx.err(
            (*path, "name"),
            f"Unknown {kind} {name!r}.{did_you_mean(name, names)} Choose one of: "
            f"{', '.join(names)}.",
        )
        return None
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if non_finite(kwargs):
        return None  # reported by the schema check, at the argument
    cls = row.load()
    if cls is None:  # the grid sampler is ours: it enumerates the space (see search.study)
        accepted = row.accepted_kwargs()
        bad = sorted(set(kwargs) - set(accepted))
        if bad:
            ctx.err(
                (*path, bad[0]),
                f"The {name} sampler takes no argument '{bad[0]}'."
                f"{did_you_mean(bad[0], accepted)} It takes: {', '.join(accepted)}.",
            )
            return None
        return row
    sig = inspect.signature(cls)
    try:
        sig.bind(**kwargs)
    except TypeError as err:
        valid = list(row.accepted_kwargs())
        bad_key = next((k for k in kwargs if k not in sig.parameters), None)
        where = (*path, bad_key) if bad_key else path
        hint = did_you_mean(bad_key, valid) if bad_key else ""
        ctx.err(
            where,
            f"{cls.__name__} does not accept these arguments ({err}).{hint} It takes: "
            f"{', '.join(valid)}.",
        )
        return None
    optuna_log = logging.getLogger("optuna")  # a trial build's advice is for the run to give
    level = optuna_log.level
    optuna_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(**row.kwargs_for(spec))
    except Exception as err:
        ctx.err(path, f"{cls.__name__}({kwargs}) cannot be built: {err}")
        return None
    finally:
        optuna_log.setLevel(level)
    return row


_INLINE_REGISTERED: dict[str, tuple[str, str, str]] = {}


def _register_inline(entry: dict[str, Any], path: tuple[Any, ...], ctx: Context) -> str | None:
    """Register an inline ``{name, expr, params, family}`` activation; return its name."""
    unknown = unknown_key_problems(entry, INLINE_KEYS, "in an inline activation", path)
    if unknown:
        ctx.err_each(unknown)
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
    from loran_search.activations import ActivationError, find_spec

    signature = (expr, repr(sorted(params.items(), key=str)), family)
    existing = find_spec(name)
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
        from loran_search.activations import symbolic
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
    raw: dict[str, Any],
    sections: dict[str, dict[str, Any]],
    ctx: Context,
    *,
    environment: bool = True,
) -> dict[str, Any]:
    """``search:``: activations, rank, params and training against the registry.

    Args:
        raw: The ``search:`` mapping as written (after overrides).
        sections: The sections checked before it (``study`` gives the sampler: a grid needs
            finite dimensions; ``model`` and ``adapter`` the widths that bound the rank).
        ctx: Collects every error with its location.
        environment: Also check each rank against the adapted layers' widths (reads the
            model's config; see :func:`loran_search.models.describe_model`).

    Returns:
        The checked values of ``search:`` (inline activations registered for the study).
    """
    spec = sections.get("study", {}).get("sampler", {"name": "tpe"})
    sampler = spec.get("name") if isinstance(spec, dict) else None
    from loran_search.activations import ActivationError, get_spec, resolve_names

    values = check_fields("search", raw, ctx, skip=("activations", "params", "training"))
    has_forms = "forms" in raw  # a form search needs no activation besides its grammar
    acts_raw = values.get("activations", [] if has_forms else ["sinter"])
    if not isinstance(acts_raw, list):
        acts_raw = [acts_raw]
    if not acts_raw and not has_forms:
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
                from loran_search.activations.registry import unknown_activation_message

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
    from loran_search.search.arms import check_methods, method_key

    for key in list(params):
        path = ("search", "params", key)
        if method_key(key) is not None:
            continue  # a peer method's setting: checked by check_methods below
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
                from loran_search.activations.registry import unknown_activation_message

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
        if non_finite(raw_dim):
            continue  # reported by the schema check, at the number
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
        if non_finite(raw_dim):
            continue  # reported by the schema check, at the number
        try:
            dim = parse_dim(f"training.{key}", raw_dim, None, integer=kind is int)
        except SpaceError as err:
            ctx.err(path, str(err))
            continue
        if grid and not dim.finite:
            ctx.err(path, grid_needs_finite_message(f"training.{key}"))
    values["params"] = params
    values["training"] = training
    check_methods(values, sections, ctx)
    from loran_search.search.tune import check_tune

    check_tune(values, sections, ctx)  # study.tune, adapter.normalize, no pinned baseline
    if has_forms and isinstance(raw.get("forms"), dict):
        check_forms_section(raw["forms"], ctx, grid=grid)
    if environment and isinstance(ranks, list) and ranks:
        targets = sections.get("adapter", {}).get("target_modules")
        desc = _model_description(ctx)
        if desc is not None and targets:
            from loran_search.models import target_problems

            for path, message in target_problems(desc, targets, ranks):
                if path[:2] == ("search", "rank"):
                    ctx.err(path, message)
    return values


def check_forms_section(raw: dict[str, Any], ctx: Context, *, grid: bool = False) -> None:
    """``search.forms``: the grammar and each ``params`` entry as a ``form.<param>`` dimension.

    The grammar is :func:`loran_search.search.grammar.check_grammar`'s; a parameter is fixed, a
    list of choices or a range with ``low`` and ``high`` (:func:`parse_dim`), finite for the
    grid, whose number of trees is bounded too.
    """
    from loran_search.record import FORM_PREFIX
    from loran_search.search.grammar import check_grammar, grid_tree_problem

    base = ("search", "forms")
    problems = check_grammar(raw)
    for sub, message in problems:
        ctx.err((*base, *sub), message)
    params = raw.get("params") or {}
    for pname, raw_dim in params.items() if isinstance(params, dict) else ():
        if non_finite(raw_dim):
            continue  # reported by the schema check, at the number
        full = f"{FORM_PREFIX}.{pname}"
        try:
            dim = parse_dim(full, raw_dim, None)
        except SpaceError as err:
            ctx.err((*base, "params", pname), str(err))
            continue
        if grid and not dim.finite:
            ctx.err((*base, "params", pname), grid_needs_finite_message(full))
    if grid and not problems:
        problem = grid_tree_problem(raw)
        if problem:
            ctx.err((*base, "depth"), problem)


def _model_description(ctx: Context) -> Any:
    """The model's layers as :func:`check_model` read them (``None`` when unknown)."""
    return ctx.shared.get("model_description")


def check_model(
    raw: dict[str, Any],
    sections: dict[str, dict[str, Any]],
    ctx: Context,
    *,
    environment: bool = True,
) -> dict[str, Any]:
    """``model:``: the schema's checks, then the device, the name and the config.

    With ``environment``: ``cuda`` needs CUDA here (torch is imported only for a ``cuda``
    device); ``model.name`` must resolve (an embedded model, a folder with ``config.json`` or
    a hub id) and a readable ``config.json`` must be valid JSON.
    """
    from loran_search.kinds import describe, kind_problems, resolve_kind
    from loran_search.models import (
        DEVICE_PATTERN,
        ModelError,
        device_problem,
        model_name_problem,
    )

    values = check_fields("model", raw, ctx)
    device = values.get("device")
    if isinstance(device, str) and (environment or DEVICE_PATTERN.fullmatch(device) is None):
        problem = device_problem(device)
        if problem:
            ctx.err(("model", "device"), problem)
    usable = all(k in values or k not in raw for k in ("name", "revision"))
    if environment and usable:
        section = ModelSection(**values)
        problem = model_name_problem(section.name)
        kinds = kind_problems(section) if "kind" in values or "kind" not in raw else []
        for key, message in kinds:  # the model kind (loran_search.kinds) fits the base
            ctx.err(("model", key), message)
        if problem:
            ctx.err(("model", "name"), problem)
        elif not any(key in ("kind", "name") for key, _ in kinds):
            ctx.shared["model_kind"] = resolve_kind(section)
            try:
                ctx.shared["model_description"] = describe(section)
            except ModelError as err:
                ctx.err(("model", "name"), str(err))
    return values


def check_task(
    raw: dict[str, Any],
    sections: dict[str, dict[str, Any]],
    ctx: Context,
    *,
    environment: bool = True,
) -> dict[str, Any]:
    """``task:``: the schema's checks, the metric, the generation budget and the data source.

    ``study.metric`` must be a metric of ``task.type`` (the tasks package's
    :data:`~loran_search.tasks.TASK_METRICS`); a summarization's ``max_new_tokens`` must leave
    room for the prompt in ``max_length``. With ``environment``: the data source is checked
    cheaply (:func:`loran_search.tasks.check_source`) and ``max_length`` against the model's
    context when its config can be read.
    """
    from loran_search.tasks import check_source, metric_names

    values = check_fields("task", raw, ctx)
    task = TaskSection(**values)

    def given(*keys: str) -> bool:  # every key as written, or absent (its default)
        return all(k in values or k not in raw for k in keys)

    metric = sections.get("study", {}).get("metric", "accuracy")
    valid = metric_names(task.type)
    if given("type") and valid and isinstance(metric, str) and metric not in valid:
        ctx.err(
            ("study", "metric"),
            f"Task type {task.type!r} does not produce the metric {metric!r}."
            f"{did_you_mean(metric, valid)} Its metrics: {', '.join(valid)}. Set study.metric to "
            "one of them (or change task.type).",
        )
    confirm = sections.get("study", {}).get("confirm", True)
    if confirm is not False and given("eval_split", "train_split"):
        from loran_search.search.confirm import resolve_confirm, split_problem

        data = resolve_confirm(confirm)
        assert isinstance(data, dict)
        split = data.get("split")
        problem = split_problem(split, task.eval_split, task.train_split)
        if problem:
            ctx.err(("study", "confirm", "split"), problem)
        elif isinstance(split, str) and given("name", "type"):
            problem = unknown_split_problem(task, split)
            if problem:
                ctx.err(("study", "confirm", "split"), problem)
    budget = given("type", "max_new_tokens", "max_length")
    if budget and task.type == "summarization" and task.max_new_tokens >= task.max_length:
        ctx.err(
            ("task", "max_new_tokens"),
            f"`max_new_tokens` ({task.max_new_tokens}) must be below `max_length` "
            f"({task.max_length}): a summarization prompt gets max_length − max_new_tokens "
            "tokens, which leaves none. Lower max_new_tokens or raise max_length.",
        )
    if not environment:
        return values
    kind = ctx.shared.get("model_kind")
    if kind is not None and given("name", "type", "env"):
        from loran_search.kinds import task_problems

        kind_found = task_problems(kind, task)
        for key, message in kind_found:
            ctx.err(("task", key), message)
        if not kind_found and task.type == "control":
            from loran_search.tasks.control import env_problems

            for message in env_problems(task.env):
                ctx.err(("task", "env"), message)
    if given("name", "type"):
        for problem in check_source(task):
            ctx.err(("task", "name"), problem)
    desc = _model_description(ctx)
    context = desc.max_positions if desc is not None else None
    if given("max_length") and context and task.max_length > context:
        ctx.err(
            ("task", "max_length"),
            f"`max_length` ({task.max_length}) exceeds the model's context of {context} "
            f"tokens; set task.max_length ≤ {context}.",
        )
    return values


def unknown_split_problem(task: TaskSection, split: str) -> str | None:
    """Why ``task`` has no split ``split`` (the confirmation's), or ``None`` (or unknown).

    The splits are known without loading data for embedded datasets, local files and folders
    (:func:`loran_search.tasks.data.available_splits`) and control tasks
    (:data:`loran_search.tasks.control.SPLIT_OFFSETS`); a hub dataset's are checked when it is
    loaded.
    """
    from loran_search.tasks.data import available_splits, find_split

    if task.type == "control":
        from loran_search.tasks.control import SPLIT_OFFSETS

        available: list[str] | None = list(SPLIT_OFFSETS)
    else:
        available = available_splits(task)
    if available is None or find_split(split, available) is not None:
        return None
    held_out = [
        s
        for s in available
        if find_split(s, [task.train_split, task.eval_split]) is None
        and find_split(task.train_split, [s]) is None
        and find_split(task.eval_split, [s]) is None
    ]
    hint = did_you_mean(split, available)
    fix = f"Set study.confirm.split: {held_out[0]}" if held_out else "Set study.confirm.split"
    return (
        f"`study.confirm.split` {split!r} is not a split of task {task.name!r} (its splits: "
        f"{', '.join(available)}), so every confirmation trial would fail.{hint} {fix} (a split "
        "the search neither trains nor evaluates on), or write study.confirm: false."
    )


def check_adapter(
    raw: dict[str, Any],
    sections: dict[str, dict[str, Any]],
    ctx: Context,
    *,
    environment: bool = True,
) -> dict[str, Any]:
    """``adapter:``: the schema's checks, then every target module against the model's layers.

    With ``environment`` and a model whose config can be read cheaply (see
    :func:`loran_search.models.describe_model`), each name of ``target_modules`` must match a
    linear layer (with a did-you-mean); otherwise ``run``/``train`` check it once the model is
    loaded, before training.
    """
    values = check_fields("adapter", raw, ctx)
    kind = ctx.shared.get("model_kind")
    if "target_modules" not in raw and kind is not None:  # the model kind's default targets
        raw["target_modules"] = values["target_modules"] = list(kind.default_targets)
    targets = values.get("target_modules")
    if environment and targets:
        desc = _model_description(ctx)
        if desc is not None:
            from loran_search.models import target_problems

            for path, message in target_problems(desc, targets, []):
                ctx.err(path, message)
    return values


def check_study(
    raw: dict[str, Any], sections: dict[str, dict[str, Any]], ctx: Context
) -> dict[str, Any]:
    """``study:``: the schema's checks, the sampler and pruner, ``confirm`` (see the module doc).

    ``study.confirm`` is resolved here (``true`` and partial mappings get the default's other
    keys) and checked: known keys, ``top_k ≥ 1``, seeds disjoint from ``study.seeds``; its split
    is checked against ``task.eval_split`` by :func:`check_task`.
    """
    study = check_study_section(raw, sections, ctx)
    if "confirm" in study:
        from loran_search.search.confirm import confirm_problems, resolve_confirm

        confirm = resolve_confirm(study["confirm"])
        study["confirm"] = confirm
        if isinstance(confirm, dict):
            seeds = study.get("seeds", [0])
            for key, message in confirm_problems(confirm, study_seeds=seeds, eval_split=None):
                ctx.err(("study", "confirm", *key), message)
    multi = bool(study.get("objectives", []))
    sampler = _check_component(
        ctx,
        ("study", "sampler"),
        study.get("sampler", {"name": "tpe", "seed": 0}),
        "sampler",
        SAMPLERS,
    )
    pruner = _check_component(
        ctx, ("study", "pruner"), study.get("pruner", {"name": "median"}), "pruner", PRUNERS
    )
    if multi and sampler is not None and not sampler.multi_objective:
        able = [n for n, row in SAMPLERS.items() if row.multi_objective]
        ctx.err(
            ("study", "sampler", "name"),
            f"The {sampler.name} sampler optimises one objective, but study.objectives makes "
            f"this study multi-objective; use one of {', '.join(able)}, or remove "
            "study.objectives.",
        )
    if multi and pruner is not None and not pruner.multi_objective:
        able = [n for n, row in PRUNERS.items() if row.multi_objective]
        ctx.err(
            ("study", "pruner", "name"),
            "Optuna cannot prune multi-objective studies; set pruner: "
            f"{{name: {' | '.join(able)}}} or remove study.objectives.",
        )
    return study


def checks(*, environment: bool = True) -> dict[str, SectionCheck]:
    """The section checks this module adds to the schema's (see ``config.parse_study``).

    Args:
        environment: Include what depends on this machine and the files the study names: the
            CUDA device, the model's name and layers (target modules, rank ≤ layer width,
            context length), the data source. ``run``, ``train`` and ``validate`` want them;
            a command that only reads a finished study (a report) may leave them out.
    """
    env = {"environment": environment}
    return {
        "study": check_study,
        "model": functools.partial(check_model, **env),
        "task": functools.partial(check_task, **env),
        "adapter": functools.partial(check_adapter, **env),
        "search": functools.partial(check_search_section, **env),
    }


def check_whole_study(cfg: StudyConfig, ctx: Context) -> None:
    """What no single section knows: the grid sampler's number of points.

    ``sampler: grid`` enumerates ``search.rank × each activation's own searched values ×
    search.training`` (:meth:`~loran_search.search.space.SearchSpace.plain_grid_size`, counted
    without making the points); more than
    :data:`~loran_search.search.types.MAX_GRID_POINTS` is refused here, before ``run`` would
    allocate them.
    """
    if cfg.study.sampler.get("name") != "grid":
        return
    from loran_search.search.space import build_space, grid_size_problem

    try:
        n = build_space(cfg).plain_grid_size()
    except SpaceError:
        return  # reported by the section checks
    problem = grid_size_problem(n)
    if problem:
        ctx.err(("study", "sampler", "name"), problem)


#: The section checks of :func:`load_config` (all of them; see :func:`checks`).
CHECKS = checks()
_SCHEMA_AND_SEARCH = checks(environment=False)


def validate_file(
    path: str | Path, overrides: Sequence[str] = (), *, environment: bool = True
) -> list[tuple[str, str]]:
    """Every error of a study file (after overrides) as ``(location, message)`` pairs.

    ``location`` reads ``FILE:LINE dotted.path`` (``FILE:LINE:COLUMN`` for YAML syntax errors,
    ``--set KEY (dotted.path)`` for an override). Nothing of the study is created or written:
    no storage, no directory; only ``imports:`` modules are imported and inline formulas
    registered. Checking the model's layers may build a cheap embedded model (glassllm) and
    keeps what it read under the asset cache (see :func:`loran_search.models.describe_model`).

    Args:
        path: The study YAML.
        overrides: ``key.path=value`` strings.
        environment: See :func:`checks`.
    """
    return check_file(path, overrides, environment=environment)[1]


def check_file(
    path: str | Path, overrides: Sequence[str] = (), *, environment: bool = True
) -> tuple[StudyConfig | None, list[tuple[str, str]]]:
    """:func:`validate_file`'s checks, and the config when there is no error.

    ``validate`` prints the study's plan from it (:mod:`loran_search.search.plan`).
    """
    return parse_study(
        path,
        overrides,
        checks=CHECKS if environment else _SCHEMA_AND_SEARCH,
        final=check_whole_study,
    )


def load_config(
    path: str | Path, overrides: Sequence[str] = (), *, environment: bool = True
) -> StudyConfig:
    """Read, override and validate a study file: every check ``validate`` makes.

    Args:
        path: The study YAML.
        overrides: ``key.path=value`` strings (see :func:`loran_search.config.apply_overrides`).
        environment: See :func:`checks`; ``False`` for commands that read a finished study
            (a report) on a machine that may not have its GPU or data.

    Raises:
        ConfigError: Every error found, each with its location and a fix.
    """
    cfg, errors = parse_study(
        path,
        overrides,
        checks=CHECKS if environment else _SCHEMA_AND_SEARCH,
        final=check_whole_study,
    )
    if errors or cfg is None:
        raise ConfigError(errors)
    return cfg


def load_config_text(
    text: str, overrides: Sequence[str] = (), *, environment: bool = True
) -> StudyConfig:
    """Like :func:`load_config` for YAML text (used by tests and notebooks)."""
    cfg, errors = parse_study(
        None,
        overrides,
        text=text,
        checks=CHECKS if environment else _SCHEMA_AND_SEARCH,
        final=check_whole_study,
    )
    if errors or cfg is None:
        raise ConfigError(errors)
    return cfg
