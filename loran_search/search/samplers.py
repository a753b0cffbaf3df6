"""The one table of samplers and pruners: names, Optuna classes, accepted and default kwargs.

``study.sampler: {name: tpe, seed: 0, …}`` and ``study.pruner: {name: median, …}`` name a row of
:data:`SAMPLERS` / :data:`PRUNERS`; the other keys are the class's keyword arguments. The table
holds the class as a dotted path, so listing names, defaults and which rows work with several
objectives imports nothing; :meth:`Component.load`, :meth:`Component.accepted_kwargs`,
:func:`build_sampler` and :func:`build_pruner` import optuna when called.

``grid`` is loran-search's own: the conditional grid is enumerated and queued by
:mod:`loran_search.search.study` (Optuna's ``GridSampler`` cannot express a conditional space),
so it accepts only ``seed`` and ``shuffle`` and samples nothing itself (a random sampler covers a
parameter the grid does not fix).
"""

from __future__ import annotations

import importlib
import random
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loran_search.record import PARAM_ACTIVATION

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

GRID_KWARGS = ("seed", "shuffle")


@dataclass(frozen=True)
class Component:
    """One row of the table.

    Attributes:
        name: The ``name:`` of ``study.sampler``/``study.pruner``.
        class_path: ``module.Class`` of the Optuna class; ``None`` for loran-search's grid.
        defaults: Keyword arguments set unless the study gives them.
        conditional_defaults: Set, unless given, when the space is conditional (several
            activations, each with its own parameters).
        kwargs: The accepted keyword arguments when they are not the class's own (the grid).
        multi_objective: Whether it works in a multi-objective study (``study.objectives``).
        summary: One line for listings and error messages.
    """

    name: str
    class_path: str | None
    defaults: tuple[tuple[str, Any], ...] = ()
    conditional_defaults: tuple[tuple[str, Any], ...] = ()
    kwargs: tuple[str, ...] | None = None
    multi_objective: bool = True
    summary: str = ""

    def load(self) -> type | None:
        """The Optuna class (imports optuna); ``None`` for the grid."""
        if self.class_path is None:
            return None
        module, _, cls = self.class_path.rpartition(".")
        return getattr(importlib.import_module(module), cls)

    def accepted_kwargs(self) -> tuple[str, ...]:
        """The keyword arguments it accepts (the class signature's; imports optuna)."""
        if self.kwargs is not None:
            return self.kwargs
        import inspect

        cls = self.load()
        assert cls is not None
        return tuple(p for p in inspect.signature(cls).parameters if p != "self")

    def kwargs_for(self, spec: Mapping[str, Any], *, conditional: bool = False) -> dict[str, Any]:
        """The constructor's kwargs: ``spec`` without ``name``, then the defaults."""
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        for key, value in self.defaults:
            kwargs.setdefault(key, value)
        if conditional:
            for key, value in self.conditional_defaults:
                kwargs.setdefault(key, value)
        return kwargs


SAMPLERS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "tpe",
            "optuna.samplers.TPESampler",
            # Parameters exist only for their activation: multivariate TPE with group
            # decomposition models each activation's sub-space jointly.
            conditional_defaults=(("multivariate", True), ("group", True)),
            summary="tree-structured Parzen estimator (multivariate + group when conditional)",
        ),
        Component("random", "optuna.samplers.RandomSampler", summary="uniform random"),
        Component(
            "grid",
            None,
            kwargs=GRID_KWARGS,
            summary="every point of the conditional grid, queued (loran-search's own)",
        ),
        Component(
            "cmaes",
            "optuna.samplers.CmaEsSampler",
            defaults=(("warn_independent_sampling", False),),
            multi_objective=False,
            summary="CMA-ES (needs the cmaes package; one objective)",
        ),
        Component(
            "gp", "optuna.samplers.GPSampler", summary="Gaussian-process Bayesian optimisation"
        ),
        Component("nsga2", "optuna.samplers.NSGAIISampler", summary="NSGA-II (multi-objective)"),
    )
}
PRUNERS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("none", "optuna.pruners.NopPruner", summary="never prune"),
        Component(
            "median", "optuna.pruners.MedianPruner", multi_objective=False, summary="median rule"
        ),
        Component(
            "hyperband",
            "optuna.pruners.HyperbandPruner",
            multi_objective=False,
            summary="Hyperband",
        ),
        Component(
            "successive_halving",
            "optuna.pruners.SuccessiveHalvingPruner",
            multi_objective=False,
            summary="asynchronous successive halving",
        ),
        Component(
            "wilcoxon",
            "optuna.pruners.WilcoxonPruner",
            multi_objective=False,
            summary="Wilcoxon signed-rank test against the best trial",
        ),
    )
}
SAMPLER_NAMES = tuple(SAMPLERS)
PRUNER_NAMES = tuple(PRUNERS)


def sampler(name: str) -> Component:
    """The row of sampler ``name``.

    Raises:
        KeyError: No such sampler (the message lists the names).
    """
    try:
        return SAMPLERS[name]
    except KeyError:
        raise KeyError(f"Unknown sampler {name!r}; one of {', '.join(SAMPLER_NAMES)}.") from None


def pruner(name: str) -> Component:
    """The row of pruner ``name``.

    Raises:
        KeyError: No such pruner (the message lists the names).
    """
    try:
        return PRUNERS[name]
    except KeyError:
        raise KeyError(f"Unknown pruner {name!r}; one of {', '.join(PRUNER_NAMES)}.") from None


def build_sampler(
    spec: Mapping[str, Any], *, conditional: bool = False, excluded: Collection[str] = ()
) -> BaseSampler:
    """The Optuna sampler of ``spec`` (``{name, **kwargs}``).

    Args:
        spec: ``study.sampler``.
        conditional: The space has several activations (TPE then models each sub-space).
        excluded: Activations a candidate may never take (the baseline-only ``identity``); a
            proposal of one is replaced by a uniformly drawn allowed choice.
    """
    import optuna

    row = sampler(str(spec.get("name")))
    kwargs = row.kwargs_for(spec, conditional=conditional)
    seed = kwargs.get("seed")
    if row.class_path is None:  # the grid: queued points; random for anything unforeseen
        base: BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        cls = row.load()
        assert cls is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            base = cls(**kwargs)
    return candidate_sampler(base, set(excluded), seed) if excluded else base


def build_pruner(spec: Mapping[str, Any]) -> BasePruner:
    """The Optuna pruner of ``spec`` (``{name, **kwargs}``)."""
    import optuna

    row = pruner(str(spec.get("name")))
    cls = row.load()
    assert cls is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(**row.kwargs_for(spec))


def candidate_sampler(base: BaseSampler, excluded: set[str], seed: int | None) -> BaseSampler:
    """Wrap ``base`` so that a candidate never gets an ``activation`` only baselines may take.

    When ``identity`` is a baseline but not a searched activation, the ``activation`` parameter
    still lists it (Optuna needs one distribution per name); a proposal of it is replaced by a
    uniformly drawn searched activation.
    """
    from optuna.samplers import BaseSampler

    class CandidateSampler(BaseSampler):
        def __init__(self) -> None:
            self._base = base
            self._rng = random.Random(seed)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._base, name)

        def _fix(self, value: Any, choices: Any) -> Any:
            if value in excluded:
                allowed = [c for c in choices if c not in excluded]
                return self._rng.choice(allowed)
            return value

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._base.infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            params = self._base.sample_relative(study, trial, search_space)
            if PARAM_ACTIVATION in params and PARAM_ACTIVATION in search_space:
                params[PARAM_ACTIVATION] = self._fix(
                    params[PARAM_ACTIVATION], search_space[PARAM_ACTIVATION].choices
                )
            return params

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            value = self._base.sample_independent(study, trial, name, dist)
            if name == PARAM_ACTIVATION:
                value = self._fix(value, dist.choices)
            return value

        def before_trial(self, study: Any, trial: Any) -> None:
            self._base.before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._base.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._base.reseed_rng()

    return CandidateSampler()
