"""search.forms: enumeration, canonical names, screening, dedup, validation, a planted form."""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from activations import get_spec
from activations.formula import parse_formula
from loran_search import record as R
from loran_search.config import ConfigError
from loran_search.search import forms as F
from loran_search.search import grammar as G
from loran_search.search import keys as K
from loran_search.search import screening as S
from loran_search.search.samplers import SAMPLER_NAMES
from loran_search.search.space import build_space, parse_dim
from loran_search.search.study import open_study
from loran_search.search.validate import load_config_text
from loran_search.search.workers import run_worker
from tests.loran_search.search.conftest import cli

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

STUDY = """\
study:
  name: {name}
  storage: {storage}
  metric: accuracy
  direction: maximize
  sampler: {sampler}
  pruner: {{name: none}}
  n_trials: {n_trials}
  seeds: [0]
  baseline: {baseline}
  save_adapters: none
  report: false
  confirm: false
  heartbeat_interval: 60
model: {{name: glassllm, quantization: none}}
task: {{name: bbc-news, train_size: 16, eval_size: 8}}
training: {{max_steps: 6, eval_every: 2}}
search:
  rank: [4]
  forms:
    template: {template}
    leaves: {leaves}
    operators: {operators}
    depth: {depth}
    params: {params}
    require: {require}
"""


def study_text(**kw: Any) -> str:
    values: dict[str, Any] = {
        "name": "forms",
        "storage": "sqlite:///forms.db",
        "sampler": "{name: grid}",
        "n_trials": 50,
        "baseline": "false",
        "template": '"x + a*G"',
        "leaves": '["x", "sin(x)", "cos(x)"]',
        "operators": '["*"]',
        "depth": 2,
        "params": "{a: 0.1}",
        "require": "[starts_at_zero, finite]",
    }
    values.update(kw)
    return STUDY.format(**values)


def space_of(template: str, leaves: list[str], operators: list[str], depth: int, **params: Any):
    raw = {"template": template, "leaves": leaves, "operators": operators, "depth": depth}
    dims = {p: parse_dim(f"form.{p}", v, None) for p, v in params.items()}
    assert G.check_grammar({**raw, "params": params}) == []
    return F.FormSpace(raw, dims)


class Recorder:
    """A training function that records every call (and rewards ``planted``, if given)."""

    def __init__(self, planted: str | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.planted = planted

    def __call__(self, cfg: Any, *, activation: str, activation_params: dict, **kw: Any) -> Any:
        expr = get_spec(activation).expr
        self.calls.append({"activation": activation, "expr": expr, **activation_params})
        # a value that differs per form; the planted form gets the best one
        digest = int(activation.removeprefix("form_")[:6], 16) if activation != "identity" else 0
        acc = 0.9 if expr == self.planted else 0.5 + (digest % 1000) / 1e4
        return {"status": "completed", "metrics": {"accuracy": acc}}


def run_study(tmp_path: Path, train_fn: Any, **kw: Any):
    kw.setdefault("storage", f"sqlite:///{tmp_path / 'forms.db'}")
    cfg = load_config_text(study_text(**kw), environment=False)
    handle = open_study(cfg, log=lambda m: None)
    run_worker(handle, train_fn=train_fn, log=lambda m: None)
    return handle


# ------------------------------------------------------------------------------ enumeration


@pytest.mark.parametrize(
    ("leaves", "operators", "depth", "ordered", "commutative", "canonical"),
    [
        # x; x+x, x*x: 1 + 2 = 3 trees either way; 3 forms x, 2x, x²
        (["x"], ["+", "*"], 2, 3, 3, 3),
        # T(2) = {x, x+x, x*x}; ordered 1 + 2·3² = 19, commutative 1 + 2·(3·4/2) = 13; the
        # forms: x, 2x, x², 3x, 4x, x+x², 2x+x², 2x², 4x², x³, 2x³, x⁴ = 12
        (["x"], ["+", "*"], 3, 19, 13, 12),
        # the grammar: 4 leaves + per operator 16 ordered / 10 unordered pairs
        (["x", "sin(w*x)", "tanh(x/s)", "exp(-(x/s)**2)"], ["+", "*"], 2, 36, 24, 24),
        # '-' does not commute: 2 + 4 trees; x−x = sin(x)−sin(x) = 0, so 5 forms
        (["x", "sin(x)"], ["-"], 2, 6, 6, 5),
    ],
)
def test_enumeration_counts_match_a_hand_count(
    leaves: list[str],
    operators: list[str],
    depth: int,
    ordered: int,
    commutative: int,
    canonical: int,
) -> None:
    n = len(leaves)
    assert len(G.trees(n, operators, depth, commutative=False)) == ordered
    assert G.count_trees(n, operators, depth, commutative=False) == ordered
    assert len(G.trees(n, operators, depth)) == commutative
    assert G.count_trees(n, operators, depth) == commutative
    params = {p: 1.0 for p in ("w", "s") if any(re.search(rf"\b{p}\b", v) for v in leaves)}
    fs = space_of("G", leaves, operators, depth, **params)
    assert len(fs.distinct_forms()) == canonical


def test_the_grid_is_every_distinct_form_times_its_own_parameters() -> None:
    fs = space_of(
        "x + a*G", ["x", "sin(w*x)"], ["*"], 2, a=[0.1, 0.2], w={"low": 1.0, "high": 3.0, "num": 3}
    )
    # forms: a·x, a·sin(wx), a·x², a·x·sin(wx), a·sin²(wx): x-only forms have 2 points, the
    # others 2 × 3
    points = fs.grid_points()
    assert len(points) == 2 * 2 + 3 * 6
    assert all(p["activation"] == R.FORM_CHOICE for p in points)
    assert len({json.dumps(p, sort_keys=True) for p in points}) == len(points)


# ------------------------------------------------------------------------------ canonical form


def test_equal_forms_spelt_differently_get_one_name() -> None:
    fs = space_of("x + a*G", ["x", "x**2", "sin(x)"], ["+", "*"], 2, a=0.5)
    square = fs.form_of_tree(1)  # the leaf x**2
    assert fs.form_of_tree(("*", 0, 0)).name == square.name  # x*x = x**2
    assert fs.form_of_tree(("*", 0, 2)).name == fs.form_of_tree(("*", 2, 0)).name  # commutes
    twice = fs.form_of_tree(("+", 0, 0))
    assert twice.expr == "2*a*x + x"  # constants folded
    other = space_of("a*G + x", ["x", "x*x", "sin(x)"], ["*", "+"], 2, a=0.5)
    assert other.form_of_tree(1).name == square.name  # another template and leaf spelling
    assert other.form_of_tree(("+", 0, 0)).name == twice.name
    # (s + t)·u and s·u + t·u are one form (expanded)
    deep = space_of("G", ["x", "sin(x)", "tanh(x)"], ["+", "*"], 3)
    a = deep.form_of_tree(("*", ("+", 1, 2), ("*", 0, 0)))
    b = deep.form_of_tree(("+", ("*", 1, ("*", 0, 0)), ("*", 2, ("*", 0, 0))))
    assert a.name == b.name


def test_a_form_is_registered_under_a_stable_name_with_its_canonical_formula() -> None:
    fs = space_of(
        "x + a*G", ["x", "sin(w*x)"], ["*"], 2, a={"low": 0.01, "high": 1.0, "log": True}, w=3.0
    )
    form = fs.form_of_tree(("*", 1, 0))
    assert form.name == G.form_name(form.expr) and len(form.name) == len("form_") + 10
    assert form.name == "form_" + __import__("hashlib").sha256(form.expr.encode()).hexdigest()[:10]
    fs.register(form)
    spec = get_spec(form.name)
    assert spec.expr == form.expr == "a*x*sin(w*x) + x"
    assert spec.family == R.FORM_FAMILY
    assert spec.params["a"].low == 0.01 and spec.params["a"].high == 1.0 and spec.params["a"].log
    assert spec.params["w"].default == 3.0
    # the text is in the safe parser's language, and parsing it gives the form back
    assert G.canonical_expr(parse_formula(spec.expr, ["a", "w"])) == G.canonical_expr(
        fs._expr_of(("*", 1, 0))
    )
    fs.register(form)  # idempotent
    again = space_of("x + a*G", ["x", "sin(w*x)"], ["*"], 2, a=0.5, w=3.0)
    assert again.form_of_tree(("*", 0, 1)).name == form.name


def test_abs_and_relu_are_written_back_in_the_formula_language() -> None:
    fs = space_of("G", ["abs(x)", "relu(x)"], ["*"], 2)
    exprs = {f.expr for f, _ in fs.distinct_forms()}
    assert "abs(x)" in exprs and "relu(x)" in exprs
    for text in exprs:
        parse_formula(text)


# ------------------------------------------------------------------------------ screening


def test_a_form_with_nonzero_f0_never_reaches_the_training_function(tmp_path: Path) -> None:
    rec = Recorder()
    handle = run_study(tmp_path, rec)
    trials = [t for t in handle.study.get_trials() if t.user_attrs.get("role") == "candidate"]
    # x + a·G for G in {x, sin, cos, x², x·sin, x·cos, sin², sin·cos, cos²}: cos and cos² start
    # at a ≠ 0; x + a·x is linear (LoRA with a rescaled step)
    assert len(trials) == 9
    screened = [t for t in trials if t.user_attrs.get(R.FAILURE_KIND) == R.FAIL_SCREENED]
    assert {t.user_attrs["form"]["expr"] for t in screened} == {
        "a*cos(x) + x",
        "a*cos(x)**2 + x",
        "a*x + x",
    }
    for t in screened:
        assert t.state == TrialState.PRUNED
        if t.user_attrs["form"]["expr"] == "a*x + x":
            assert t.user_attrs[R.FAILURE].startswith("screened: linear: the form reduces to")
            assert "rescaled by f' = 1.1" in t.user_attrs[R.FAILURE]
        else:
            assert t.user_attrs[R.FAILURE].startswith("screened: starts_at_zero: f(0) = 0.1")
    trained = {c["expr"] for c in rec.calls}
    assert len(rec.calls) == 6 and len(trained) == 6
    for expr in trained:
        f = parse_formula(expr, ["a"])
        assert f.subs({s: 0 if s.name == "x" else 0.1 for s in f.free_symbols}) == 0
    assert not trained & {t.user_attrs["form"]["expr"] for t in screened}
    counts = R.form_counts(map(R.TrialRecord.from_frozen, handle.study.get_trials()))
    assert counts == {
        "proposed": 9,
        "screened": 3,
        "deduplicated": 0,
        "inert": 0,
        "trained": 6,
        "distinct": 9,
    }


@pytest.mark.parametrize(
    ("leaf", "require", "rule"),
    [
        ("log(abs(x))", ["finite"], "finite: f"),
        ("1/x", ["finite"], "finite: f"),
        ("sin(100*x)", [{"max_lipschitz": 5}], "max_lipschitz: |f'| reaches 11 on [-1, 1] > 5"),
    ],
)
def test_each_rule_refuses_with_its_value(leaf: str, require: list[Any], rule: str) -> None:
    raw = {"template": "x + a*G", "leaves": [leaf], "depth": 1, "require": require}
    fs = F.FormSpace(raw, {"a": parse_dim("form.a", 0.1, None)})
    form = fs.form_of_tree(0)
    refusal = S.screen(form, {"a": 0.1}, fs.require, (-1.0, 1.0))
    assert refusal is not None and refusal.startswith(rule), refusal


@pytest.mark.parametrize(
    ("leaf", "where"),
    [
        # the probe's three: a 4,001-point grid steps over each pole
        ("x/(x - 0.31234567)", "x = 0.312346"),
        ("tan(3*x)", "x = -0.523599"),  # ±π/6, the nearest to 0 first
        ("x/(x**2 - 0.1234567)", "x = -0.351364"),
        # a denominator sympy cannot solve: found by its sign change on a dense grid
        ("x/(x + 0.5*sin(10*x) - 0.2)", "x = 0.0338699"),
    ],
)
def test_a_pole_inside_the_interval_is_screened(leaf: str, where: str) -> None:
    raw = {"template": "x + a*G", "leaves": [leaf], "depth": 1}  # default require
    fs = F.FormSpace(raw, {"a": parse_dim("form.a", 0.1, None)})
    refusal = S.screen(fs.form_of_tree(0), {"a": 0.1}, fs.require, (-1.0, 1.0))
    assert refusal is not None and refusal.startswith("finite: Singular at " + where), refusal
    assert "inf or NaN" in refusal


@pytest.mark.parametrize(
    "leaf",
    [
        "x/(x - 0.31234567)",  # the pole lies outside [-0.3, 0.3]
        "tan(x)",  # poles at ±π/2
        "x/(1 + x**2)",
        "x*sin(x)/(2 + cos(x))",  # a denominator without a real zero
        "x*sin(100*x)",
        "x*exp(-(x/0.01)**2)",
        "tanh(x/0.001)",
    ],
)
def test_benign_forms_still_pass_the_finite_screen(leaf: str) -> None:
    raw = {"template": "x + a*G", "leaves": [leaf], "depth": 1, "require": ["finite"]}
    fs = F.FormSpace(raw, {"a": parse_dim("form.a", 0.1, None)})
    assert S.screen(fs.form_of_tree(0), {"a": 0.1}, fs.require, (-0.3, 0.3)) is None


def test_the_slope_bound_refuses_a_pole_no_search_placed(monkeypatch: pytest.MonkeyPatch) -> None:
    import activations.audit as audit_module

    monkeypatch.setattr(audit_module, "singularities", lambda f, interval: [])
    raw = {"template": "x + a*G", "leaves": ["x/(x - 0.31234567)"], "depth": 1}
    fs = F.FormSpace(raw, {"a": parse_dim("form.a", 0.1, None)})
    refusal = S.screen(fs.form_of_tree(0), {"a": 0.1}, fs.require, (-1.0, 1.0))
    assert refusal is not None and refusal.startswith("finite: |f'| reaches "), refusal
    assert "above 1e+08" in refusal


def test_a_linear_form_is_screened_as_lora_with_a_rescaled_step() -> None:
    fs = space_of("x + a*G", ["x", "sin(x)"], ["+", "*"], 2, a=0.5)
    refusal = S.screen(fs.form_of_tree(("+", 0, 0)), {"a": 0.5}, fs.require, (-1, 1))
    assert refusal is not None and refusal.startswith("linear: the form reduces to f(x) = 2.0*x")
    assert "plain LoRA with its step rescaled by f' = 2" in refusal
    assert S.screen(fs.form_of_tree(("*", 0, 1)), {"a": 0.5}, fs.require, (-1, 1)) is None


def test_the_identity_and_undefined_forms_are_screened() -> None:
    fs = space_of("G", ["x", "sin(x)"], ["-", "/"], 2)
    fs3 = space_of("x + G", ["x", "sin(x)"], ["-", "/"], 3)
    gone = fs3.form_of_tree(("-", 1, 1))  # x + (sin − sin) = x
    assert S.screen(gone, {}, fs3.require, (-1, 1)).startswith("identity:")
    undefined = fs3.form_of_tree(("/", 0, ("-", 1, 1)))  # x / 0
    assert not undefined.defined
    assert S.screen(undefined, {}, fs3.require, (-1, 1)).startswith("finite: the form")
    assert fs.form_of_tree(0).defined


def test_screening_uses_the_visited_range_of_the_baselines() -> None:
    study = optuna.create_study()
    for qs, rank in (([-2e-3, 0.0, 1e-3], 4), ([-5.0, 5.0], 8)):
        study.add_trial(
            optuna.trial.create_trial(
                params={"rank": rank},
                distributions={"rank": optuna.distributions.CategoricalDistribution([4, 8])},
                value=0.5,
                user_attrs={"role": "baseline", "mechanism": {"0": {"p_quantiles": qs}}},
            )
        )
    assert R.visited_range(study.get_trials(), 4) == (-2e-3, 2e-3)
    assert R.visited_range(study.get_trials(), 16) == (-1.0, 1.0)


# ------------------------------------------------------------------------------ dedup


def test_a_repeat_proposal_is_answered_from_the_stored_trial(tmp_path: Path) -> None:
    rec = Recorder()
    handle = run_study(
        tmp_path,
        rec,
        sampler="{name: random, seed: 3}",
        n_trials=12,
        leaves='["x", "sin(x)"]',
        operators='["*"]',
    )
    trials = [t for t in handle.study.get_trials() if t.user_attrs.get("role") == "candidate"]
    dups = [t for t in trials if R.DUPLICATE_OF in t.user_attrs]
    assert dups, "12 random proposals of 5 forms repeat one"
    by_number = {t.number: t for t in trials}
    for t in dups:
        twin = by_number[t.user_attrs[R.DUPLICATE_OF]]
        assert t.user_attrs["form"]["key"] == twin.user_attrs["form"]["key"]
        assert t.state == twin.state == TrialState.COMPLETE and t.values == twin.values
        assert "deduplicated" in t.user_attrs[R.DEDUPLICATED]
    # x + a·x is screened (linear) each time it is proposed, never trained
    screened = [t for t in trials if t.user_attrs.get(R.FAILURE_KIND) == R.FAIL_SCREENED]
    assert {t.user_attrs["form"]["expr"] for t in screened} == {"a*x + x"}
    trained = len(trials) - len(dups) - len(screened)
    assert len(rec.calls) == len({c["activation"] for c in rec.calls}) == trained
    # the analysis leaves the answered repeats out (their twin stands for them)
    from loran_search.analysis.records import load_records

    rows = load_records(handle.study).trials
    assert set(rows["trial"]) == {t.number for t in trials} - {t.number for t in dups}


def _two_workers_train_each_form_once(tmp_path: Path, fake_env: dict[str, str], storage: str):
    path = tmp_path / "s.yaml"
    path.write_text(
        study_text(
            storage=storage,
            sampler="{name: random, seed: 0}",
            n_trials=10,
            leaves='["x", "sin(x)"]',
            operators='["*"]',
            baseline="true",
        )
    )
    env = dict(fake_env, FAKE_TRAIN_SLEEP="0.2")  # each run takes 0.6 s: the workers overlap
    procs = [
        subprocess.Popen(
            cli("worker", str(path), "--storage", storage),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = [json.loads(line) for line in Path(fake_env["FAKE_TRAIN_LOG"]).read_text().splitlines()]
    forms = [(a, json.dumps(p, sort_keys=True)) for a, _, p, _, _ in runs if a != "identity"]
    assert len(forms) == len(set(forms)), f"a form was trained twice: {forms}\n{outs}"
    from loran_search.storage import open_storage

    study = optuna.load_study(study_name="forms", storage=open_storage(storage))
    counts = R.form_counts(map(R.TrialRecord.from_frozen, study.get_trials()))
    assert counts["proposed"] == 10 and counts["trained"] == len(forms)
    assert counts["deduplicated"] == 10 - len(forms) - counts["screened"] > 0


def test_two_workers_on_sqlite_train_each_form_once(tmp_path: Path, fake_env) -> None:
    _two_workers_train_each_form_once(tmp_path, fake_env, f"sqlite:///{tmp_path / 's.db'}")


def test_two_workers_on_a_journal_train_each_form_once(tmp_path: Path, fake_env) -> None:
    _two_workers_train_each_form_once(tmp_path, fake_env, f"journal:{tmp_path / 's.log'}")


def _add(study: optuna.Study, state: TrialState, **ua: Any) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            value=0.5 if state == TrialState.COMPLETE else None,
            user_attrs={"role": "candidate", **ua},
        )
    )


def test_a_proposal_defers_to_a_finished_twin_or_to_one_that_started_first() -> None:
    study = optuna.create_study()
    form = {"key": "k"}
    _add(study, TrialState.RUNNING, form=form)  # 0
    _add(study, TrialState.RUNNING, form=form)  # 1, started after 0
    trials = study.get_trials()
    assert K.find_twin(trials, 1, "k").number == 0  # wait for the earlier one
    assert K.find_twin(trials, 0, "k") is None  # the earlier one trains; 1 defers to it
    assert K.find_twin(trials, 1, "other") is None
    _add(study, TrialState.FAIL, form=form, failure_kind=R.FAIL_ERROR)  # 2: retried, no answer
    _add(study, TrialState.COMPLETE, form=form, duplicate_of=7)  # 3: itself an answer
    assert K.find_twin(study.get_trials(), 0, "k") is None
    _add(study, TrialState.COMPLETE, form=form)  # 4: a finished twin answers everyone
    assert K.find_twin(study.get_trials(), 0, "k").number == 4
    assert K.find_twin(study.get_trials(), 1, "k").number == 4


def test_a_proposal_waits_for_earlier_ones_that_have_not_said_their_form() -> None:
    study = optuna.create_study()
    _add(study, TrialState.RUNNING)  # 0: no params, no form yet
    _add(study, TrialState.RUNNING, role="baseline")  # 1: not a candidate
    _add(study, TrialState.RUNNING, form={"key": "k"})  # 2: said it
    _add(study, TrialState.RUNNING)  # 3: started after 2
    trials = study.get_trials()
    assert [t.number for t in S.undeclared(trials, 2)] == [0]
    assert [t.number for t in S.undeclared(trials, 0)] == []


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("key", "value", "where", "words"),
    [
        ("leaves", '["x.__class__"]', "search.forms.leaves[0]", "attribute access"),
        ("leaves", '["__class__"]', "search.forms.leaves[0]", "double underscores"),
        ("leaves", '["x.real"]', "search.forms.leaves[0]", "attribute access"),
        ("leaves", '["__import__(x)"]', "search.forms.leaves[0]", "double underscores"),
        ("leaves", '["eval(x)"]', "search.forms.leaves[0]", "unknown function 'eval'"),
        ("leaves", '["x", "open(x)"]', "search.forms.leaves[1]", "Allowed functions"),
        ("leaves", '["x", "w*x"]', "search.forms.leaves[1]", "Declare it under"),
        ("template", '"G.__globals__"', "search.forms.template", "not allowed"),
        ("template", '"lambda: G"', "search.forms.template", "Python keyword"),
        ("template", '"x + a*x"', "search.forms.template", "does not use G"),
        ("template", '"getattr(G, x)"', "search.forms.template", "unknown function"),
        ("operators", '["**"]', "search.forms.operators[0]", "+ - * / only"),
        ("depth", "0", "search.forms.depth", "from 1 (a leaf) to 3"),
        ("depth", "4", "search.forms.depth", "from 1 (a leaf) to 3"),
        ("require", "[positive]", "search.forms.require[0]", "Unknown screening rule"),
        ("params", "{a: 0.1, b: 2.0}", "search.forms.params.b", "used by no leaf"),
        ("params", "{a: {low: 1.0}}", "search.forms.params.a", "needs both `low` and `high`"),
    ],
)
def test_bad_grammars_are_refused_at_validate_time_with_the_key_and_a_fix(
    key: str, value: str, where: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(study_text(**{key: value}), environment=False)
    text = str(info.value)
    assert where in text and words in text, text
    assert "e.g." in text, text  # and a fix


def test_the_grid_refuses_a_continuous_form_parameter_and_too_many_trees() -> None:
    with pytest.raises(ConfigError, match=r"search.forms.params.a.*num:"):
        load_config_text(study_text(params="{a: {low: 0.1, high: 1.0}}"), environment=False)
    many = '["x", "sin(x)", "cos(x)", "tanh(x)", "x**2", "x**3"]'
    with pytest.raises(ConfigError, match="enumerates at most"):
        load_config_text(
            study_text(leaves=many, operators='["+", "-", "*", "/"]', depth=3), environment=False
        )
    cfg = load_config_text(
        study_text(leaves=many, operators='["+", "-", "*", "/"]', depth=3, sampler="{name: tpe}"),
        environment=False,
    )
    assert cfg.search.activations == [] and cfg.search.forms["depth"] == 3


def test_a_form_search_alone_or_beside_activations() -> None:
    cfg = load_config_text(study_text(), environment=False)
    space = build_space(cfg)
    assert space.activation_choices == [R.FORM_CHOICE]
    assert "forms" in space.describe()
    first = space.first_configuration()
    assert get_spec(first.activation).expr == "a*x + x" and first.activation_params == {"a": 0.1}
    both = study_text(baseline="true").replace("search:\n", "search:\n  activations: [sinter]\n")
    space = build_space(load_config_text(both, environment=False))
    assert space.activation_choices == ["identity", "sinter", R.FORM_CHOICE]
    assert space.excluded_for_candidates == {"identity"}


# ------------------------------------------------------------------------------ samplers


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_every_sampler_samples_forms(tmp_path: Path, sampler: str) -> None:
    rec = Recorder()
    n = 6
    handle = run_study(
        tmp_path,
        rec,
        sampler=f"{{name: {sampler}, seed: 0}}",
        n_trials=n,
        params="{a: [0.1, 0.2]}",
        operators='["+", "*"]',
    )
    cands = [
        t
        for t in handle.study.get_trials()
        if t.user_attrs.get("role") == "candidate" and t.state != TrialState.WAITING
    ]
    assert len(cands) == n  # the grid's other points stay queued
    for t in cands:
        assert t.params["activation"] == R.FORM_CHOICE and G.ROOT in t.params
        spec = t.user_attrs["activation_spec"]
        assert spec["family"] == R.FORM_FAMILY and spec["expr"] == t.user_attrs["form"]["expr"]
        assert spec["name"] == G.form_name(spec["expr"])
    assert rec.calls


# ------------------------------------------------------------------------------ a planted form


def test_an_exhaustive_grid_ranks_the_planted_form_first(tmp_path: Path) -> None:
    planted = "a*x*sin(x) + x"
    rec = Recorder(planted=planted)
    handle = run_study(
        tmp_path,
        rec,
        leaves='["x", "sin(x)", "tanh(x)"]',
        operators='["+", "*"]',
        params="{a: [0.1, 0.3]}",
        baseline="true",
    )
    study = handle.study
    best = study.best_trial
    assert best.user_attrs["activation_spec"]["expr"] == planted
    # every distinct form (4 + 2·6 = 15 trees → 15 forms) was proposed at both amplitudes
    counts = R.form_counts(map(R.TrialRecord.from_frozen, study.get_trials()))
    assert counts["proposed"] == 2 * counts["distinct"] == 30
    # the report (records only) ranks it first too, with its formula and counts
    from loran_search.analysis.report import analyse, render_html, render_markdown

    a = analyse(study)
    table = a.forms.table
    assert table.iloc[0]["formula"] == planted and math.isclose(table.iloc[0]["metric"], 0.9)
    assert a.forms.counts == counts
    assert "**Forms**: 30 proposed (15 distinct canonical forms)" in a.summary[-1]
    assert f"| 1 | `{planted}` |" in render_markdown(a)
    assert r"a \cdot x \cdot \sin" in render_html(a)  # its LaTeX


def test_export_prints_register_formula_calls_for_the_best_forms(tmp_path: Path, capsys) -> None:
    import importlib.util

    from activations import get_activation, unregister
    from loran_search.cli import main

    planted = "a*x*sin(x) + x"
    path = tmp_path / "s.yaml"
    text = study_text(
        storage=f"sqlite:///{tmp_path / 'forms.db'}",
        leaves='["x", "sin(x)"]',
        params="{a: [0.1, 0.3]}",
    )
    path.write_text(text)
    handle = open_study(load_config_text(text, environment=False), log=lambda m: None)
    run_worker(handle, train_fn=Recorder(planted=planted), log=lambda m: None)
    out = tmp_path / "found.py"
    assert main(["activations", "export", str(path), "--top", "2", "--prefix", "found_"]) == 0
    code = capsys.readouterr().out
    assert "register_formula(" in code and f'"{planted}"' in code
    assert main(["activations", "export", str(path), "--top", "2", "--out", str(out)]) == 0
    assert "register_formula(" in out.read_text()
    for name in ("found_1", "found_2"):
        unregister(name)
    (tmp_path / "prefixed.py").write_text(code)
    spec = importlib.util.spec_from_file_location("prefixed", tmp_path / "prefixed.py")
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # the printed module runs
    first = get_spec("found_1")
    assert first.expr == planted and first.family == R.FORM_FAMILY
    # the best trial's value is the default, the searched choices the range
    assert first.params["a"].low == 0.1 and first.params["a"].high == 0.3
    assert get_activation("found_1").params["a"] in (0.1, 0.3)
    assert main(["activations", "export", str(path), "--top", "0"]) != 0


def test_a_long_form_grid_enumeration_says_how_far_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 18 finding 11: a form grid near the tree cap printed nothing for 111 s
    clock = iter(range(0, 10_000, 3))  # every look at the clock: 3 s later
    monkeypatch.setattr(F.time, "monotonic", lambda: float(next(clock)))
    fs = space_of("x + a*G", ["x", "sin(x)", "tanh(x)"], ["+", "*"], 2, a=0.1)
    lines: list[str] = []
    forms = fs.distinct_forms(say=lines.append)
    n_trees = G.count_trees(3, ["+", "*"], 2)
    assert lines and lines[0].startswith(f"Enumerating the form grid: 2 of {n_trees:,} trees")
    assert "distinct forms so far (about" in lines[0]
    assert lines[-1].startswith(f"Form grid: {len(forms):,} distinct forms from {n_trees:,} trees")
    quiet: list[str] = []
    fast = space_of("x + a*G", ["x", "sin(x)"], ["*"], 2, a=0.1)
    monkeypatch.setattr(F.time, "monotonic", lambda: 0.0)
    fast.distinct_forms(say=quiet.append)
    assert quiet == []  # a quick enumeration prints nothing


def test_export_from_a_study_without_forms_says_it_has_no_form_search(
    tmp_path: Path, capsys
) -> None:
    # issue 18 finding 11: it said "run it first", which cannot give a study without forms any
    from loran_search.cli import main
    from tests.loran_search.search.conftest import study_text as plain_text

    path = tmp_path / "plain.yaml"
    path.write_text(plain_text(storage=f"sqlite:///{tmp_path / 'plain.db'}"))
    handle = open_study(load_config_text(path.read_text(), environment=False), log=lambda m: None)
    run_worker(handle, train_fn=Recorder(), n_trials=0, log=lambda m: None)  # the baseline
    assert main(["activations", "export", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Study 't' has no form search: its search space has no `search.forms`" in err
    assert "run it first" not in err and "Traceback" not in err
    # a form search whose every form was screened: says so, and how to see why
    forms = tmp_path / "forms.yaml"
    text = study_text(storage=f"sqlite:///{tmp_path / 'forms.db'}", leaves='["cos(x)"]', depth=1)
    forms.write_text(text)
    handle = open_study(load_config_text(text, environment=False), log=lambda m: None)
    run_worker(handle, train_fn=Recorder(), log=lambda m: None)
    assert main(["activations", "export", str(forms)]) == 2
    err = capsys.readouterr().err
    assert "has a form search but no completed, non-duplicate form trial" in err
    assert "(form trials: 1 PRUNED;" in err and f"loran-search report {forms}" in err
