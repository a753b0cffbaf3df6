"""Study YAML loading and validation: every error by message, with its location, nothing created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loran_search.config import ConfigError, StudyConfig, parse_yaml_value
from loran_search.search.validate import load_config, load_config_text, validate_file

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted((ROOT / "studies").glob("*.yaml"))

BASE = """\
study:
  name: t
  storage: sqlite:///{db}
  metric: accuracy
  sampler: {{name: tpe, seed: 0}}
  pruner: {{name: median}}
  n_trials: 3
  seeds: [0]
model: {{name: glassllm, quantization: none}}
task: {{name: bbc-news, train_size: 16, eval_size: 8}}
training: {{max_steps: 4, eval_every: 2}}
search:
  activations: [sinter]
  rank: [4]
  params:
    sinter.amplitude: {{low: 1.0e-4, high: 1.0e-2, log: true}}
    sinter.frequency: 1.0e4
"""


@pytest.fixture
def write(tmp_path: Path):
    db = tmp_path / "never" / "created.db"

    def _write(text: str | None = None, name: str = "s.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else BASE.format(db=db))
        return path

    _write.db = db  # type: ignore[attr-defined]
    return _write


def errors_of(path: Path, overrides: list[str] | None = None) -> list[tuple[str, str]]:
    return validate_file(path, overrides or [])


def one_error(path: Path, overrides: list[str] | None = None) -> tuple[str, str]:
    errs = errors_of(path, overrides)
    assert len(errs) == 1, errs
    return errs[0]


def test_valid_file_loads_typed(write) -> None:
    cfg = load_config(write())
    assert isinstance(cfg, StudyConfig)
    assert cfg.study.n_trials == 3
    assert cfg.search.params["sinter.amplitude"] == {"low": 1e-4, "high": 1e-2, "log": True}
    assert cfg.training.max_steps == 4
    assert not write.db.parent.exists()


def test_exponent_without_dot_is_a_float() -> None:
    assert parse_yaml_value("1e-3") == pytest.approx(1e-3)
    assert parse_yaml_value("[8, 16]") == [8, 16]
    assert parse_yaml_value("tpe") == "tpe"


@pytest.mark.parametrize(
    ("override", "path", "value"),
    [
        ("training.max_steps=7", ("training", "max_steps"), 7),
        ("sinter.amplitude=1e-3", ("search", "params"), {"sinter.amplitude": 1e-3}),
        ("search.params.sinter.amplitude=2e-3", ("search", "params"), {"sinter.amplitude": 2e-3}),
        ("study.sampler.name=random", ("study", "sampler"), {"name": "random", "seed": 0}),
        ("search.rank=[4, 8]", ("search", "rank"), [4, 8]),
    ],
)
def test_overrides(write, override: str, path: tuple[str, str], value: object) -> None:
    cfg = load_config(write(), [override])
    got = getattr(getattr(cfg, path[0]), path[1])
    if isinstance(value, dict):
        for k, v in value.items():
            assert got[k] == v
    else:
        assert got == value


def test_shorthand_range_key(write) -> None:
    cfg = load_config(write(), ["sinter.amplitude.high=5e-3"])
    assert cfg.search.params["sinter.amplitude"]["high"] == pytest.approx(5e-3)


def test_narrowing_activations_on_the_command_line_drops_their_file_params(write) -> None:
    # `--set search.activations=[identity]` on a Sinter study: a QLoRA run, not an error.
    cfg = load_config(write(), ["search.activations=[identity]"])
    assert cfg.search.activations == ["identity"] and cfg.search.params == {}
    # ... but the same stale entry written in the file is a mistake, reported with its line,
    text = BASE.format(db=write.db).replace("activations: [sinter]", "activations: [identity]")
    loc, msg = errors_of(write(text))[0]
    assert loc.endswith(":16 search.params.sinter.amplitude")
    assert "which is not in search.activations (identity)" in msg
    # ... and so is one set on the command line next to the narrowing.
    loc, msg = one_error(write(), ["search.activations=[identity]", "sinter.amplitude=1e-3"])
    assert loc.startswith("--set sinter.amplitude")
    assert "add 'sinter' there or remove this entry" in msg


def test_every_error_reported_at_once_with_lines(write) -> None:
    text = BASE.format(db="x.db").replace("n_trials: 3", "n_trials: 3\n  n_trails: 4")
    text = text.replace("[sinter]", "[sinterr]").replace("rank: [4]", "rank: [0]")
    text = text.replace("max_steps: 4", "max_step: 4")
    errs = errors_of(write(text))
    msgs = "\n".join(f"{loc}: {m}" for loc, m in errs)
    assert len(errs) == 4, msgs
    assert "s.yaml:8 study.n_trails" in msgs and "Did you mean 'n_trials'?" in msgs
    assert "s.yaml:12 training.max_step" in msgs and "Did you mean 'max_steps'?" in msgs
    assert "s.yaml:14 search.activations[0]" in msgs and "Did you mean 'sinter'" in msgs
    assert "s.yaml:15 search.rank[0]" in msgs and "A rank must be >= 1, but got 0" in msgs


CASES = [
    # (what to replace, replacement, overrides, location fragment, message fragment)
    ("n_trials: 3", "n_trials: 3\n  colour: red", [], "study.colour", "Unknown key 'colour'"),
    ("model: {", "modle: {x: 1}\nmodel: {", [], ":9 modle", "Did you mean 'model'?"),
    ("[sinter]", "[sinterr]", [], "search.activations[0]", "Unknown activation 'sinterr'"),
    (
        "low: 1.0e-4, high: 1.0e-2",
        "low: 1.0e-2, high: 1.0e-4",
        [],
        "sinter.amplitude",
        "`low <= high` must hold for 'sinter.amplitude', but got (low=0.01, high=0.0001)",
    ),
    (
        "low: 1.0e-4, high: 1.0e-2",
        "low: 1.0e-4, high: 50.0",
        [],
        "sinter.amplitude",
        "is outside its declared range [1e-07, 10]",
    ),
    (
        "sinter.frequency: 1.0e4",
        "sinter.frequency: 1.0e9",
        [],
        "sinter.frequency",
        "outside its declared range",
    ),
    (
        "sinter.frequency: 1.0e4",
        "sinter.frequncy: 1.0e4",
        [],
        "sinter.frequncy",
        "Did you mean 'frequency'?",
    ),
    (
        "sinter.frequency: 1.0e4",
        "relu.amplitude: 1.0",
        [],
        "relu.amplitude",
        "not in search.activations",
    ),
    ("rank: [4]", "rank: [4, -2]", [], "search.rank[1]", "A rank must be >= 1"),
    (
        "name: tpe, seed: 0",
        "name: tpee",
        [],
        "study.sampler.name",
        "Unknown sampler 'tpee'. Did you mean 'tpe'?",
    ),
    (
        "name: tpe, seed: 0",
        "name: tpe, n_startup_trail: 3",
        [],
        "study.sampler.n_startup_trail",
        "Did you mean 'n_startup_trials'?",
    ),
    ("name: median", "name: medain", [], "study.pruner.name", "Did you mean 'median'?"),
    ("name: tpe, seed: 0", "seed: 0", [], "study.sampler", "`sampler` needs `name:`"),
    (
        "name: median",
        "name: median, n_warmup: 3",
        [],
        "study.pruner.n_warmup",
        "MedianPruner does not accept",
    ),
    ("storage: sqlite:///", "storage: sqlite:/", [], "study.storage", "three slashes"),
    ("n_trials: 3", "n_trials: three", [], "study.n_trials", "must be an integer"),
    (
        "name: tpe, seed: 0",
        "name: grid",
        [],
        "sinter.amplitude",
        "The grid sampler cannot enumerate the continuous range",
    ),
    (
        "n_trials: 3",
        "n_trials: 3\n  objectives: [train_seconds]",
        [],
        "study.pruner.name",
        "cannot prune multi-objective",
    ),
    (
        "n_trials: 3",
        "n_trials: 3",
        ["study.storage=foo.db"],
        "--set study.storage",
        "Unsupported storage URL 'foo.db'",
    ),
    (
        "n_trials: 3",
        "n_trials: 3",
        ["study.storage=postgresql://127.0.0.1"],
        "--set study.storage",
        "names no database",
    ),
    ("n_trials: 3", "n_trials: 3", ["nonsense=1"], "--set nonsense=1", "neither a section key"),
    (
        "n_trials: 3",
        "n_trials: 3",
        ["training.max_steps"],
        "--set training.max_steps",
        "Expected KEY=VALUE",
    ),
    (
        "model: {",
        "imports: [no_such_plugin_module]\nmodel: {",
        [],
        "imports[0]",
        "Cannot import activation plugin module 'no_such_plugin_module'",
    ),
    ("seeds: [0]", "seeds: [0, 0]", [], "study.seeds", "repeats a seed"),
    (
        "n_trials: 3",
        "n_trials: 3\n  save_adapters: some",
        [],
        "study.save_adapters",
        "must be one of best, all, none",
    ),
    (
        "sinter.frequency: 1.0e4",
        "sinter.frequency: {low: 10, high: 100, step: 5, log: true}",
        [],
        "sinter.frequency",
        "combines `step` with `log: true`",
    ),
]


@pytest.mark.parametrize(("old", "new", "overrides", "where", "what"), CASES)
def test_each_error_by_message(write, old, new, overrides, where, what) -> None:
    text = BASE.format(db=write.db)
    assert old in text
    path = write(text.replace(old, new, 1))
    loc, msg = one_error(path, overrides)
    assert where in loc, (loc, msg)
    assert what in msg, (loc, msg)
    assert not write.db.parent.exists(), "validation must not create the storage"
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    assert what in str(info.value)


def test_yaml_syntax_error_has_line_and_column(write) -> None:
    path = write("study:\n  name: x\n  sampler: {name: tpe\nmodel: {}\n")
    ((loc, msg),) = errors_of(path)
    assert msg.startswith("YAML syntax error")
    assert ":4:" in loc, loc  # the line where the parser gave up
    assert "started at line 3" in msg


def test_duplicate_key(write) -> None:
    text = BASE.format(db=write.db).replace("n_trials: 3", "n_trials: 3\n  n_trials: 4")
    loc, msg = one_error(write(text))
    assert ":8 study.n_trials" in loc and "Duplicate key 'n_trials'" in msg


def test_missing_file(tmp_path: Path) -> None:
    ((_loc, msg),) = validate_file(tmp_path / "nope.yaml")
    assert "No such file" in msg


def test_inline_formula_activation(write) -> None:
    text = (
        BASE.format(db=write.db)
        .replace(
            "activations: [sinter]",
            "activations:\n    - sinter\n    - {name: wavy_t, expr: 'x + a*x*sin(w*x)', "
            "params: {a: {default: 0.01, low: 1.0e-4, high: 0.1, log: true}, w: 10.0}}",
        )
        .replace("sinter.frequency: 1.0e4", "sinter.frequency: 1.0e4\n    wavy_t.a: {}")
    )
    cfg = load_config(write(text))
    assert cfg.search.activations[1].name == "wavy_t"
    from loran_search.search.space import build_space

    space = build_space(cfg)
    assert space.activations == ["sinter", "wavy_t"]
    assert space.dims["wavy_t"]["a"].kind == "range"
    assert space.dims["wavy_t"]["w"].kind == "fixed"
    # loading twice in one process (validate, then run) is fine
    load_config(write(text))


def test_inline_formula_error_located(write) -> None:
    text = BASE.format(db=write.db).replace(
        "activations: [sinter]",
        "activations:\n    - sinter\n"
        "    - {name: bad_t, expr: 'x + a*x*exec(w)', params: {a: 0.1}}",
    )
    loc, msg = one_error(write(text))
    assert "search.activations[1].expr" in loc and "bad_t" in msg


def test_inline_cannot_shadow_registered(write) -> None:
    text = (
        BASE.format(db=write.db)
        .replace("activations: [sinter]", "activations: [{name: relu, expr: 'x'}]")
        .replace("    sinter.amplitude: {low: 1.0e-4, high: 1.0e-2, log: true}\n", "")
        .replace("    sinter.frequency: 1.0e4\n", "")
    )
    _loc, msg = one_error(write(text))
    assert "clashes with the registered activation 'relu'" in msg


def test_family_names_and_globs(write) -> None:
    text = (
        BASE.format(db=write.db)
        .replace("[sinter]", "[sinter, fourier]")
        .replace("sinter.frequency: 1.0e4", "sinter.frequency: 1.0e4\n    '*.amplitude': {}")
    )
    cfg = load_config(write(text))
    from loran_search.search.space import build_space

    space = build_space(cfg)
    assert "fourier_sine" in space.activations
    assert space.dims["fourier_sine"]["amplitude"].kind == "range"
    # exact key wins over the glob
    assert space.dims["sinter"]["amplitude"].high == pytest.approx(1e-2)
    assert space.dims["sinter"]["frequency"].kind == "fixed"


def test_text_loader() -> None:
    cfg = load_config_text("study: {name: x}\nsearch: {activations: [relu], rank: 4}\n")
    assert cfg.search.rank == [4]


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_shipped_study_validates(path: Path) -> None:
    assert validate_file(path) == []
    first = path.read_text().splitlines()[0]
    assert first.startswith("# Run: loran-search run studies/")


def test_shipped_studies_present() -> None:
    names = {p.name for p in STUDIES}
    assert {
        "sinter_amplitude.yaml",
        "activation_ablation.yaml",
        "frequency_amplitude.yaml",
        "rank_sweep.yaml",
        "beyond_sinter.yaml",
        "summarization.yaml",
        "smoke.yaml",
        "llama2_7b_samsum.yaml",
        "llama2_7b_20newsgroups.yaml",
    } <= names


def test_cli_validate_exit_codes(write, tmp_path: Path) -> None:
    good = write()
    bad = write(BASE.format(db=write.db).replace("[sinter]", "[nope]"), name="bad.yaml")
    run = [str(Path(sys.executable).with_name("loran-search")), "validate"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    res = subprocess.run([*run, str(good), str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2
    assert "bad.yaml:13 search.activations[0]" in res.stderr
    assert "Unknown activation 'nope'" in res.stderr
    assert list(tmp_path.iterdir()) == [good, bad] or set(tmp_path.iterdir()) == {good, bad}


# -- study.confirm and search.skip_inert -------------------------------------------------------


def test_confirm_and_skip_inert_defaults() -> None:
    cfg = StudyConfig()
    assert cfg.study.confirm == {"top_k": 3, "seeds": [100, 101, 102], "split": "test"}
    assert cfg.search.skip_inert is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", False),
        ("true", {"top_k": 3, "seeds": [100, 101, 102], "split": "test"}),
        ("{top_k: 5}", {"top_k": 5, "seeds": [100, 101, 102], "split": "test"}),
        ("{seeds: [7], split: test}", {"top_k": 3, "seeds": [7], "split": "test"}),
    ],
)
def test_confirm_is_resolved_against_the_default(write, value: str, expected: object) -> None:
    cfg = load_config(write(), [f"study.confirm={value}", "search.skip_inert=true"])
    assert cfg.study.confirm == expected and cfg.search.skip_inert is True


def test_confirm_errors_name_the_line_the_key_and_the_fix(write) -> None:
    text = BASE.format(db=write.db).replace(
        "  seeds: [0]\n", "  seeds: [0, 1]\n  confirm: {top_k: 0, seeds: [1, 100], spilt: x}\n"
    )
    errs = dict(errors_of(write(text)))
    line = text.splitlines().index("  confirm: {top_k: 0, seeds: [1, 100], spilt: x}") + 1
    assert (
        "`top_k` must be ≥ 1"
        in errs[f"{write.db.parent.parent / 's.yaml'}:{line} study.confirm.top_k"]
    )
    seeds = errs[f"{write.db.parent.parent / 's.yaml'}:{line} study.confirm.seeds"]
    assert "shares seed [1] with `study.seeds`" in seeds and "disjoint" in seeds
    unknown = errs[f"{write.db.parent.parent / 's.yaml'}:{line} study.confirm.spilt"]
    assert "Did you mean 'split'?" in unknown


def test_a_confirmation_on_the_search_split_is_refused_naming_both_keys(write) -> None:
    loc, msg = one_error(write(), ["task.eval_split=test"])
    assert "study.confirm.split" in loc
    assert "`study.confirm.split` ('test')" in msg and "`task.eval_split` = 'test'" in msg
    assert "study.confirm: false" in msg  # the fix
    assert errors_of(write(), ["task.eval_split=test", "study.confirm=false"]) == []
    assert errors_of(write(), ["task.eval_split=test", "study.confirm.split=val"]) == []


@pytest.mark.parametrize(
    ("extra", "overrides", "path", "where", "valid"),
    [
        (
            "",
            ["model.quantisation=none"],
            "model.quantisation",
            "in `model:`",
            "name, quantization",
        ),
        ("studdy: {name: x}\n", [], "studdy", "at the top level", "imports, study"),
        (
            "",
            ["study.tune={training.learnin_rate: [1.0e-3]}", "study.baseline=false"],
            "study.tune.training.learnin_rate",
            "in `study.tune:`",
            "training.max_steps",
        ),
        (
            "",
            ["study.confirm={spilt: test}"],
            "study.confirm.spilt",
            "in `study.confirm:`",
            "top_k",
        ),
        (
            "",
            ["search.activations=[{name: mine, expr: 'x', famly: custom}]"],
            "search.activations[0].famly",
            "in an inline activation",
            "name, expr, params, family",
        ),
        (
            "",
            ["sinter.amplitude={low: 1.0e-4, hihg: 1.0e-2}"],
            "search.params.sinter.amplitude",
            "in the range of 'sinter.amplitude'",
            "low, high, log, step, num",
        ),
        (
            "",
            ['search.forms={template: "x + amplitude*G", depht: 2}'],
            "search.forms.depht",
            "in `search.forms:`",
            "template, leaves",
        ),
    ],
)
def test_an_unknown_key_reads_the_same_everywhere(write, extra, overrides, path, where, valid):
    """Issue 20: one wording, `Unknown key 'K' WHERE. Did you mean 'X'? Valid keys: …`."""
    all_errors = errors_of(write(BASE.format(db=write.db) + extra), overrides)
    errs = [(loc, msg) for loc, msg in all_errors if "Unknown key" in msg]
    assert len(errs) == 1, all_errors
    loc, msg = errs[0]
    assert loc.endswith(f"({path})") or loc.endswith(f" {path}"), loc
    assert msg.startswith("Unknown key '"), msg
    assert f"' {where}. Did you mean '" in msg and f"Valid keys: {valid}" in msg, msg


def test_every_unknown_key_of_a_mapping_is_reported() -> None:
    from loran_search.config import unknown_key_problems

    problems = unknown_key_problems({"lo": 1, "high": 2, "setp": 3}, ("low", "high", "step"), "x")
    assert [path for path, _ in problems] == [("lo",), ("setp",)]
    assert (
        problems[1][1] == "Unknown key 'setp' x. Did you mean 'step'? Valid keys: low, high, step."
    )
