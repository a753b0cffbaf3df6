"""The one sampler/pruner table (search/samplers.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from loran_search.search import samplers as S

ROOT = Path(__file__).resolve().parents[3]


def test_the_names() -> None:
    assert S.SAMPLER_NAMES == ("tpe", "random", "grid", "cmaes", "gp", "nsga2")
    assert S.PRUNER_NAMES == ("none", "median", "hyperband", "successive_halving", "wilcoxon")
    assert not S.SAMPLERS["cmaes"].multi_objective and S.SAMPLERS["nsga2"].multi_objective
    assert S.PRUNERS["none"].multi_objective and not S.PRUNERS["median"].multi_objective


def test_listing_the_table_imports_no_optuna() -> None:
    code = (
        "import sys; from loran_search.search import samplers as S; "
        "S.SAMPLER_NAMES; S.PRUNERS['median'].summary; S.SAMPLERS['grid'].accepted_kwargs(); "
        "sys.exit(1 if 'optuna' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_accepted_kwargs() -> None:
    assert S.SAMPLERS["grid"].accepted_kwargs() == ("seed", "shuffle")
    assert "n_startup_trials" in S.SAMPLERS["tpe"].accepted_kwargs()
    assert "n_warmup_steps" in S.PRUNERS["median"].accepted_kwargs()


@pytest.mark.parametrize("name", S.SAMPLER_NAMES)
def test_every_sampler_builds(name: str) -> None:
    sampler = S.build_sampler({"name": name, "seed": 0}, conditional=True)
    cls = S.SAMPLERS[name].load() or optuna.samplers.RandomSampler
    assert isinstance(sampler, cls)


@pytest.mark.parametrize("name", S.PRUNER_NAMES)
def test_every_pruner_builds(name: str) -> None:
    pruner = S.build_pruner({"name": name})
    assert isinstance(pruner, S.PRUNERS[name].load())


def test_defaults_and_given_kwargs() -> None:
    row = S.SAMPLERS["tpe"]
    assert row.kwargs_for({"name": "tpe", "seed": 1}) == {"seed": 1}
    assert row.kwargs_for({"name": "tpe"}, conditional=True) == {
        "multivariate": True,
        "group": True,
    }
    given = row.kwargs_for({"name": "tpe", "multivariate": False}, conditional=True)
    assert given == {"multivariate": False, "group": True}
    assert S.SAMPLERS["cmaes"].kwargs_for({"name": "cmaes"}) == {"warn_independent_sampling": False}


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(KeyError, match="one of tpe, random"):
        S.build_sampler({"name": "annealing"})
    with pytest.raises(KeyError, match="one of none, median"):
        S.build_pruner({"name": "patient"})


def test_a_candidate_never_gets_an_excluded_activation() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = S.build_sampler({"name": "random", "seed": 0}, excluded={"identity"})
    study = optuna.create_study(sampler=sampler)
    dist = CategoricalDistribution(["identity", "sinter", "relu"])
    got = set()
    for _ in range(30):
        trial = study.ask()
        got.add(trial.suggest_categorical("activation", dist.choices))
        study.tell(trial, 0.0)
    assert got == {"sinter", "relu"}
