"""``study.sampler`` / ``study.pruner`` are validated against the one table (search/samplers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loran_search.cli import main
from loran_search.search import samplers, validate
from loran_search.search.samplers import Component

STUDY = """\
study:
  name: t
  storage: sqlite:///{db}
  sampler: {sampler}
  pruner: {pruner}
  n_trials: 3
{extra}model: {{name: glassllm, quantization: none}}
task: {{name: bbc-news, train_size: 16, eval_size: 8}}
search:
  activations: [sinter]
  rank: [4]
  params:
    sinter.amplitude: [1.0e-4, 1.0e-3]
"""


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    yield
    mp.undo()


@pytest.fixture
def check(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """``check(sampler, pruner, multi=False) -> (exit code, stderr)`` of ``validate``."""

    def run(sampler: str, pruner: str = "{name: none}", multi: bool = False) -> tuple[int, str]:
        extra = "  objectives: [train_seconds]\n  direction: [maximize, minimize]\n"
        path = tmp_path / "s.yaml"
        path.write_text(
            STUDY.format(
                db=tmp_path / "no.db", sampler=sampler, pruner=pruner, extra=extra if multi else ""
            )
        )
        code = main(["validate", str(path)])
        out = capsys.readouterr()
        assert "Traceback" not in out.err
        assert not (tmp_path / "no.db").exists()
        return code, out.err

    return run


def test_validation_has_no_copy_of_the_table() -> None:
    assert validate.SAMPLERS is samplers.SAMPLERS and validate.PRUNERS is samplers.PRUNERS
    for old in ("GRID_KWARGS", "_sampler_classes", "_pruner_classes"):
        assert not hasattr(validate, old), old


@pytest.mark.parametrize("name", list(samplers.SAMPLERS))
def test_every_sampler_of_the_table_validates(check, name: str) -> None:
    code, err = check(f"{{name: {name}}}")
    assert code == 0, err


@pytest.mark.parametrize("name", list(samplers.PRUNERS))
def test_every_pruner_of_the_table_validates(check, name: str) -> None:
    code, err = check("{name: random}", f"{{name: {name}}}")
    assert code == 0, err


@pytest.mark.parametrize(
    ("sampler", "pruner", "multi", "where", "what"),
    [
        ("{name: tpee}", "{name: none}", False, "study.sampler.name", "Did you mean 'tpe'?"),
        (
            "{name: tpe}",
            "{name: hyprband}",
            False,
            "study.pruner.name",
            "Did you mean 'hyperband'?",
        ),
        (
            "{name: grid, sed: 1}",
            "{name: none}",
            False,
            "study.sampler.sed",
            "The grid sampler takes no argument 'sed'. Did you mean 'seed'? It takes: seed, "
            "shuffle.",
        ),
        (
            "{name: random, sed: 1}",
            "{name: none}",
            False,
            "study.sampler.sed",
            "RandomSampler does not accept these arguments",
        ),
        (
            "{name: random, seed: -1}",
            "{name: none}",
            False,
            "study.sampler",
            "RandomSampler({'seed': -1}) cannot be built",
        ),
        (
            "{name: cmaes}",
            "{name: none}",
            True,
            "study.sampler.name",
            "The cmaes sampler optimises one objective",
        ),
        (
            "{name: nsga2}",
            "{name: median}",
            True,
            "study.pruner.name",
            "Optuna cannot prune multi-objective studies; set pruner: {name: none}",
        ),
    ],
)
def test_refusals(check, sampler: str, pruner: str, multi: bool, where: str, what: str) -> None:
    code, err = check(sampler, pruner, multi)
    assert code == 2
    assert any(where in line and what in line for line in err.splitlines()), err


def test_a_new_row_is_validated_from_the_table(check, monkeypatch: pytest.MonkeyPatch) -> None:
    row = Component("qmc", "optuna.samplers.QMCSampler", multi_objective=False)
    monkeypatch.setitem(samplers.SAMPLERS, "qmc", row)
    assert check("{name: qmc, scramble: true}")[0] == 0
    code, err = check("{name: qmc, scrambel: true}")
    assert code == 2 and "Did you mean 'scramble'?" in err
    code, err = check("{name: qmc}", multi=True)
    assert code == 2 and "The qmc sampler optimises one objective" in err
    assert "use one of tpe, random, grid, gp, nsga2" in err
