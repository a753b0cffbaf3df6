"""Fair comparisons (issue 21): ``study.tune``, the tuning phase, the pinned baseline, slope.

The known truth: the arms differ only in their optimal learning rate (the baseline's is 1e-3,
the candidate's 3e-3) and have the same peak, ``accuracy = 0.8 − 0.1·log10(lr/opt)²``. At the
study's fixed rate 3e-3 the candidate wins by 0.1·log10(3)² ≈ 0.023; tuned over {1e-3, 3e-3},
each arm is confirmed at its own optimum and they tie.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.search.confirm import confirm_setup
from loran_search.search.study import open_study
from loran_search.search.tune import TuneMismatch, TuneSetup, tune_setup
from loran_search.search.validate import load_config, validate_file
from loran_search.search.workers import run_tuning, run_worker
from loran_search.testing import examples_of
from loran_search.testing import run as fake_run
from tests.loran_search.search.conftest import FAKE_SPEC

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

OPTIMUM = {"identity": 1e-3, "sinter": 3e-3}
TUNE = "{training.learning_rate: [1.0e-3, 3.0e-3]}"


@pytest.fixture(autouse=True)
def _fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", FAKE_SPEC)
    for var in ("FAKE_TRAIN_SLEEP", "FAKE_TRAIN_RAISE", "FAKE_TRAIN_MECHANISM", "FAKE_TRAIN_LOG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def truth_accuracy(activation: str, lr: float, seed: int) -> float:
    return 0.8 - 0.1 * math.log10(lr / OPTIMUM[activation]) ** 2 + 0.001 * (seed % 10)


class Truth:
    """The known-truth trainer; counts (activation, learning rate, seed, split) calls."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.calls: list[tuple[str, float, int, str]] = []
        self.kill_at = kill_at

    def __call__(self, cfg: Any, **kw: Any) -> Any:
        lr = float(kw["training_overrides"].get("learning_rate", cfg.training.learning_rate))
        split = kw["eval_split"]
        self.calls.append((kw["activation"], lr, kw["seed"], split))
        if self.kill_at is not None and len(self.calls) == self.kill_at:
            raise Killed  # the process dies here (kill -9): nothing is recorded
        res = fake_run(cfg, **kw)
        acc = truth_accuracy(kw["activation"], lr, kw["seed"])
        return dataclasses.replace(
            res,
            metrics={"accuracy": acc},
            examples=examples_of(cfg, split, acc, kw["seed"]),
        )


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so the worker records nothing."""


def write(study_file, tune: str | None = TUNE, **kw: Any) -> Path:
    kw.setdefault("params", "    sinter.amplitude: 1.0e-2\n    sinter.frequency: 1.0e4")
    kw.setdefault("n_trials", 1)
    kw.setdefault("confirm", "{top_k: 1, seeds: [100, 101], split: test}")
    path = study_file(**kw)
    text = path.read_text().replace(
        "training: {max_steps: 6, eval_every: 2}",
        "training: {max_steps: 6, eval_every: 2, learning_rate: 3.0e-3}",
    )
    if tune is not None:
        text = text.replace("  report: false\n", f"  report: false\n  tune: {tune}\n")
    path.write_text(text)
    return path


def run(path: Path, train: Truth, *, tune: bool = True, logs: list[str] | None = None):
    cfg = load_config(path)
    handle = open_study(cfg, log=lambda m: None)
    result = run_worker(
        handle,
        train_fn=train,
        log=logs.append if logs is not None else (lambda m: None),
        confirm=confirm_setup(cfg),
        tune=tune_setup(cfg) if tune else None,
    )
    return handle, result


def by_role(study: optuna.Study, role: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.user_attrs.get("role") == role]


def assert_tuned_exactly_once(study: optuna.Study, arms: int, points: int) -> Counter:
    trials = study.get_trials()
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    done = Counter(
        t.user_attrs[R.TUNE_KEY] for t in by_role(study, "tune") if t.state == TrialState.COMPLETE
    )
    assert len(done) == arms * points, done
    assert all(n == 1 for n in done.values()), done
    return done


def confirmed(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {
        t.user_attrs["role"]: t
        for t in study.get_trials()
        if t.user_attrs.get("role") in R.CONFIRM_ROLES and t.state == TrialState.COMPLETE
    }


# ------------------------------------------------------------------------------ known truth


def test_at_a_fixed_rate_the_candidate_wins_tuned_each_arm_is_confirmed_at_its_optimum(
    study_file, tmp_path: Path
) -> None:
    fixed, _ = run(write(study_file, tune=None), Truth())
    conf = confirmed(fixed.study)
    gain = conf["confirm"].values[0] - conf["confirm_baseline"].values[0]
    assert gain == pytest.approx(0.1 * math.log10(3) ** 2, abs=1e-9)  # the step-size "win"
    assert conf["confirm"].user_attrs[R.TUNED] == {} == conf["confirm_baseline"].user_attrs[R.TUNED]

    logs: list[str] = []
    path = write(study_file, storage=f"sqlite:///{tmp_path / 'tuned.db'}")
    train = Truth()
    handle, result = run(path, train, logs=logs)
    assert any("each of 2 arms tuned over 2 learning rates: 4 runs" in m for m in logs), logs
    assert result.tune_ran == 4
    assert_tuned_exactly_once(handle.study, arms=2, points=2)
    tune_runs = Counter((c[0], c[1]) for c in train.calls if c[3] == "val")
    # the search ran each arm at 3e-3; the tuning each arm at 1e-3 and 3e-3, 2 seeds each
    assert tune_runs == {
        ("identity", 3e-3): 4,
        ("sinter", 3e-3): 4,
        ("identity", 1e-3): 2,
        ("sinter", 1e-3): 2,
    }
    for t in by_role(handle.study, "tune"):
        assert t.user_attrs["eval_split"] == "val"
        assert not t.intermediate_values  # never reported to the pruner
    conf = confirmed(handle.study)
    assert conf["confirm"].user_attrs[R.TUNED] == {"training.learning_rate": 3e-3}
    assert conf["confirm_baseline"].user_attrs[R.TUNED] == {"training.learning_rate": 1e-3}
    assert conf["confirm"].values[0] == pytest.approx(conf["confirm_baseline"].values[0])
    confirm_runs = [c for c in train.calls if c[3] == "test"]
    assert sorted(c[:2] for c in confirm_runs) == sorted(
        [("identity", 1e-3)] * 2 + [("sinter", 3e-3)] * 2
    )

    from loran_search.analysis.report import analyse

    table = analyse(handle.study).configurations
    row = table.iloc[0]
    assert row["tuned"] == '{"training.learning_rate": 0.003}'
    assert row["baseline_tuned"] == '{"training.learning_rate": 0.001}'
    untuned = analyse(fixed.study).configurations.iloc[0]
    assert untuned["tuned"] == "{}" == untuned["baseline_tuned"]

    # the response curve: one line per arm, the confirmed point marked
    from loran_search.analysis import plots as P
    from loran_search.analysis.tuning import response_frame

    curve = response_frame(handle.study)
    assert len(curve) == 4 and set(curve["key"]) == {"training.learning_rate"}
    picked = {(r.arm, r.x) for r in curve.itertuples() if r.chosen}
    assert picked == {("baseline r4", 1e-3), ("sinter r4", 3e-3)}, picked
    notes: list[str] = []
    png = P.tune_response(curve, tmp_path, notes, metric="accuracy", sign=1.0)
    assert png is not None and png.stat().st_size > 0
    assert P.tune_response(response_frame(fixed.study), tmp_path, notes, metric="a", sign=1) is None


def test_tune_trials_are_hidden_from_the_sampler(study_file) -> None:
    rng = (
        "    sinter.amplitude: {low: 1.0e-5, high: 1.0e-2, log: true}\n    sinter.frequency: 1.0e4"
    )
    path = write(study_file, params=rng, sampler="{name: tpe, seed: 0}", n_trials=2)
    handle, _ = run(path, Truth())
    seen: list[int] = []
    base = handle.study.sampler._base  # the search's wrapper around the configured sampler
    original = base.sample_independent

    def spy(study, trial, name, dist):
        seen.extend(t.number for t in study._get_trials(deepcopy=False))
        return original(study, trial, name, dist)

    base.sample_independent = spy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        handle.space.suggest(handle.study.ask())
    tune = {t.number for t in by_role(handle.study, "tune")}
    assert tune and seen and not (set(seen) & tune)


# ------------------------------------------------------------------------------ kill -9


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_after_kill_9_every_arm_and_point_is_tuned_exactly_once(
    study_file, tmp_path: Path, backend: str
) -> None:
    from tests.loran_search.search.test_study import _dead_worker

    url = f"sqlite:///{tmp_path / 'k.db'}" if backend == "sqlite" else f"journal:{tmp_path / 'k.j'}"
    path = write(study_file, storage=url)
    # search (baseline + candidate: 2 trials × 2 seeds), then die in the 2nd tune trial's run
    with pytest.raises(Killed):
        run(path, Truth(kill_at=4 + 3))
    cfg = load_config(path)
    handle = open_study(cfg, log=lambda m: None)
    running = [t for t in handle.study.get_trials() if t.state == TrialState.RUNNING]
    assert [t.user_attrs["role"] for t in running] == ["tune"]
    tid = handle.storage.get_trial_id_from_study_id_trial_number(handle.study_id, running[0].number)
    handle.storage.set_trial_system_attr(tid, R.WORKER, _dead_worker())  # its process is gone
    train = Truth()
    _, result = run(path, train)
    study = handle.study
    assert_tuned_exactly_once(study, arms=2, points=2)
    assert result.tune_ran == 3  # the killed one again and the two never started
    stale = [t for t in by_role(study, "tune") if t.state == TrialState.FAIL]
    assert len(stale) == 1 and stale[0].user_attrs["failure"].startswith("stale:")
    assert {t.user_attrs["role"] for t in confirmed(study).values()} == set(R.CONFIRM_ROLES)
    assert confirmed(study)["confirm"].user_attrs[R.TUNED] == {"training.learning_rate": 3e-3}
    # a rerun tunes and confirms nothing again
    again = Truth()
    _, result = run(path, again)
    assert result.tune_ran == 0 and result.confirm_ran == 0 and again.calls == []


def test_a_duplicate_queued_tune_trial_is_recorded_surplus(study_file) -> None:
    path = write(study_file)
    handle, _ = run(path, Truth())
    study = handle.study
    first = next(t for t in by_role(study, "tune") if t.state == TrialState.COMPLETE)
    study.enqueue_trial(
        first.params,
        user_attrs={
            R.ROLE: R.ROLE_TUNE,
            R.TUNED: first.user_attrs[R.TUNED],
            R.TUNE_ARM: first.user_attrs[R.TUNE_ARM],
            R.TUNE_KEY: first.user_attrs[R.TUNE_KEY],
        },
    )  # a second worker that queued the same key at the same instant
    train = Truth()
    run_tuning(handle, tune_setup(load_config(path)), train_fn=train, log=lambda m: None)
    assert train.calls == []
    dup = by_role(study, "tune")[-1]
    assert dup.state == TrialState.FAIL and dup.user_attrs["failure"].startswith("surplus:")


# ------------------------------------------------------------------------------ changes


def test_a_resumed_study_with_another_grid_is_refused(study_file) -> None:
    path = write(study_file)
    run(path, Truth())
    path.write_text(path.read_text().replace(TUNE, "{training.learning_rate: [3.0e-4, 1.0e-3]}"))
    with pytest.raises(TuneMismatch) as err:
        run(path, Truth())
    assert "Restore study.tune" in str(err.value.fix) or "Restore study.tune" in str(err.value)
    # --no-tune on a tuned study is another grid too
    path.write_text(path.read_text().replace("{training.learning_rate: [3.0e-4, 1.0e-3]}", TUNE))
    with pytest.raises(TuneMismatch):
        run(path, Truth(), tune=False)


def test_tuning_a_study_confirmed_without_tuning_is_refused(study_file) -> None:
    path = write(study_file)
    run(path, Truth(), tune=False)
    with pytest.raises(TuneMismatch):
        run(path, Truth())


def test_the_grid_is_the_product_of_the_keys_in_order() -> None:
    setup = TuneSetup.from_raw(
        {
            "training.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True, "num": 3},
            "adapter.alpha": [8, 16],
        }
    )
    assert setup is not None
    assert setup.points() == [
        {"training.learning_rate": 1e-4, "adapter.alpha": 8.0},
        {"training.learning_rate": 1e-4, "adapter.alpha": 16.0},
        {"training.learning_rate": 1e-3, "adapter.alpha": 8.0},
        {"training.learning_rate": 1e-3, "adapter.alpha": 16.0},
        {"training.learning_rate": 1e-2, "adapter.alpha": 8.0},
        {"training.learning_rate": 1e-2, "adapter.alpha": 16.0},
    ]
    assert setup.describe() == "6 points (3 learning_rate × 2 alpha)"


def test_adapter_alpha_is_tuned_through_the_adapter_section(study_file) -> None:
    seen: list[float] = []

    def train(cfg: Any, **kw: Any) -> Any:
        seen.append(cfg.adapter.alpha)
        return fake_run(cfg, **kw)

    path = write(study_file, tune="{adapter.alpha: [8, 32]}")
    cfg = load_config(path)
    handle = open_study(cfg, log=lambda m: None)
    run_worker(
        handle, train_fn=train, log=lambda m: None, confirm=confirm_setup(cfg), tune=tune_setup(cfg)
    )
    tune = by_role(handle.study, "tune")
    assert sorted(t.user_attrs[R.TUNED]["adapter.alpha"] for t in tune) == [8, 8, 32, 32]
    assert {8.0, 32.0} <= set(seen)


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("tune", "where", "words"),
    [
        ("{training.learnin_rate: [1.0e-3]}", "study.tune.training.learnin_rate", "Did you mean"),
        ("{training.learning_rate: []}", "study.tune.training.learning_rate", "is empty"),
        (
            "{training.learning_rate: {low: 1.0e-2, high: 1.0e-4, log: true, num: 3}}",
            "study.tune.training.learning_rate",
            "swap them",
        ),
        (
            "{training.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}}",
            "study.tune.training.learning_rate",
            "cannot enumerate",
        ),
        ("{adapter.dropout: [0.1]}", "study.tune.adapter.dropout", "adapter.alpha"),
        ("{}", "study.tune", "is empty"),
    ],
)
def test_bad_tune_entries_are_refused_with_file_and_line(
    study_file, tune: str, where: str, words: str
) -> None:
    path = write(study_file, tune=tune)
    errors = validate_file(path)
    text = "\n".join(f"{loc} {msg}" for loc, msg in errors)
    assert where in text and words in text, text
    assert f"{path}:" in text  # FILE:LINE


def test_search_training_with_a_baseline_is_refused_with_the_fix(study_file) -> None:
    """Today's main pins the baseline to one learning rate while candidates search it."""
    path = write(study_file, tune=None)
    path.write_text(
        path.read_text().replace(
            "  params:", "  training: {learning_rate: [1.0e-4, 1.0e-3]}\n  params:"
        )
    )
    text = "\n".join(f"{loc} {msg}" for loc, msg in validate_file(path))
    assert "search.training" in text and "study.tune" in text, text
    # without a baseline there is nothing to pin: still accepted
    path.write_text(path.read_text().replace("baseline: true", "baseline: false"))
    assert validate_file(path) == []


# ------------------------------------------------------------------------------ normalize


def test_normalize_slope_is_refused_for_relu_naming_it(study_file) -> None:
    path = write(study_file, tune=None, activations="[relu]", params="    {}")
    text = path.read_text().replace("model:", "adapter: {normalize: slope}\nmodel:")
    path.write_text(text)
    msgs = "\n".join(f"{loc} {msg}" for loc, msg in validate_file(path))
    assert "adapter.normalize" in msgs and "relu" in msgs and "f′(0) = 0" in msgs, msgs


def test_normalized_swish_takes_loras_first_step() -> None:
    """At B = 0 the gradients of A and B of s·swish(B·A)/f′(0) equal LoRA's (s·B·A)."""
    import torch

    from loran_search.adapters.normalize import normalized_alpha, slope_at_zero

    torch.manual_seed(0)
    d, r = 6, 2
    x = torch.randn(5, d, dtype=torch.float64)
    a0 = torch.randn(r, d, dtype=torch.float64)
    target = torch.randn(5, d, dtype=torch.float64)
    from activations import get_activation

    def grads(activation: str, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        a = a0.clone().requires_grad_(True)
        b = torch.zeros(d, r, dtype=torch.float64, requires_grad=True)
        f = get_activation(activation)
        delta = (alpha / r) * f(b @ a)  # ΔW = s·f(B·A)
        loss = ((x @ delta.T - target) ** 2).sum()
        ga, gb = torch.autograd.grad(loss, (a, b))
        return ga, gb

    lora = grads("identity", 16.0)
    plain = grads("swish", 16.0)
    normed = grads("swish", normalized_alpha(16.0, "slope", "swish", {}))
    assert slope_at_zero("swish") == pytest.approx(0.5)
    assert torch.allclose(normed[0], lora[0]) and torch.allclose(normed[1], lora[1])
    assert torch.count_nonzero(lora[1]) > 0
    assert torch.allclose(plain[1], 0.5 * lora[1])  # unnormalised: half LoRA's step


def test_normalize_slope_is_recorded_in_the_trial(study_file) -> None:
    path = write(study_file, tune=None, confirm="false")
    path.write_text(path.read_text().replace("model:", "adapter: {normalize: slope}\nmodel:"))
    handle, _ = run(path, Truth(), tune=False)
    for t in handle.study.get_trials():
        assert t.user_attrs[R.NORMALIZE]["mode"] == "slope"
        assert t.user_attrs[R.NORMALIZE]["slope_at_zero"] == pytest.approx(1.0)  # identity, sinter
    from loran_search.analysis.tuning import normalize_notes

    (note,) = normalize_notes(handle.study)  # shown in the report's notes
    assert "adapter.normalize: slope" in note and "identity 1, sinter 1" in note, note


# ------------------------------------------------------------------------------ command line


def test_the_command_line_tunes_and_refuses_no_tune_on_a_tuned_study(
    study_file, fake_env, tmp_path: Path
) -> None:
    from tests.loran_search.search.conftest import run_cli

    path = write(study_file)
    res = run_cli(["run", str(path), "--no-report"], fake_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "each of 2 arms tuned over 2 learning rates: 4 runs" in res.stderr, res.stderr
    assert "Tuning: 4 trials run here; every tune trial is done (4)." in res.stderr
    # the fake ignores the learning rate: a tie goes to the earlier grid point
    assert "tuned (each arm at its own best point" in res.stdout, res.stdout
    assert 'at {"training.learning_rate": 0.001}, its baseline at {"training.learning_rate": ' in (
        res.stdout
    )
    res = run_cli(["run", str(path), "--no-tune", "--no-report"], fake_env, tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Restore study.tune" in res.stderr and "Traceback" not in res.stderr

    other = write(study_file, file="o.yaml", storage=f"sqlite:///{tmp_path / 'o.db'}")
    res = run_cli(["run", str(other), "--no-tune", "--no-confirm"], fake_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "tuned over" not in res.stderr
    res = run_cli(["tune", str(other)], fake_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "each of 2 arms tuned over 2 learning rates: 4 runs" in res.stderr
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'o.db'}")
    assert_tuned_exactly_once(study, arms=2, points=2)
    assert not confirmed(study)  # tune runs no confirmation


def test_the_tune_command_without_study_tune_says_how_to_add_it(
    study_file, fake_env, tmp_path: Path
) -> None:
    from tests.loran_search.search.conftest import run_cli

    res = run_cli(["tune", str(write(study_file, tune=None))], fake_env, tmp_path)
    assert res.returncode == 2 and "has no study.tune" in res.stderr, res.stderr
    assert "training.learning_rate" in res.stderr


def test_two_workers_share_the_tuning(study_file, fake_env, tmp_path: Path) -> None:
    import subprocess

    from tests.loran_search.search.conftest import cli

    url = f"journal:{tmp_path / 'two.journal'}"
    grid = "    sinter.amplitude: [1.0e-4, 1.0e-3, 1.0e-2]\n    sinter.frequency: 1.0e4"
    path = write(
        study_file,
        storage=url,
        params=grid,
        n_trials=3,
        seeds="[0]",
        confirm="{top_k: 2, seeds: [100], split: test}",
        tune="{training.learning_rate: [1.0e-4, 1.0e-3, 1.0e-2]}",
    )
    fake_env["FAKE_TRAIN_SLEEP"] = "0.1"
    procs = [
        subprocess.Popen(
            cli("worker", str(path), "--storage", url),
            env=fake_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    from loran_search.storage import open_storage

    study = optuna.load_study(study_name="t", storage=open_storage(url, heartbeat_interval=None))
    assert_tuned_exactly_once(study, arms=3, points=3)  # top 2 and the baseline of their rank
    tune = [t for t in by_role(study, "tune") if t.state == TrialState.COMPLETE]
    assert len({t.system_attrs["loran.worker"]["pid"] for t in tune}) == 2
    bad = [
        t.number
        for t in study.get_trials()
        if t.state == TrialState.FAIL and t.user_attrs.get("failure_kind") != "surplus"
    ]
    assert bad == []
    assert len([t for t in confirmed(study).values()]) == 2  # both roles confirmed


def test_a_larger_top_k_tunes_just_the_further_arms_before_confirming_them(study_file) -> None:
    from loran_search.search.workers import run_confirmation

    grid = "    sinter.amplitude: [1.0e-3, 1.0e-2]\n    sinter.frequency: 1.0e4"
    path = write(study_file, params=grid, n_trials=2)
    handle, _ = run(path, Truth())
    assert_tuned_exactly_once(handle.study, arms=2, points=2)
    cfg = load_config(path)
    setup = dataclasses.replace(confirm_setup(cfg), top_k=2)  # loran-search confirm --top-k 2
    train = Truth()
    result = run_confirmation(
        handle, setup, train_fn=train, log=lambda m: None, tune=tune_setup(cfg)
    )
    assert result.tune_ran == 2 and result.confirm_ran == 1
    assert_tuned_exactly_once(handle.study, arms=3, points=2)
    conf = [t for t in handle.study.get_trials() if t.user_attrs.get("role") in R.CONFIRM_ROLES]
    assert len(conf) == 3
    assert all(t.user_attrs[R.TUNED] for t in conf)  # every confirmed arm was tuned first


def test_build_adapter_divides_the_scale_by_the_slope_at_zero(tmp_path: Path, monkeypatch) -> None:
    """The real adapter builder: s = alpha/(r·f′(0)) for swish with normalize: slope."""
    from loran_search import train
    from loran_search.config import AdapterSection, ModelSection, StudyConfig, TaskSection

    monkeypatch.setenv("LORAN_SEARCH_CACHE", str(tmp_path / "cache"))
    cfg = StudyConfig(
        model=ModelSection(name="glassllm", quantization="none"),
        task=TaskSection(name="bbc-news", max_length=40, train_size=8, eval_size=4),
    )
    scales = {}
    for normalize in (None, "slope"):
        base, _ = train.get_model(cfg)
        adapter = AdapterSection(target_modules=["q_proj"], alpha=16.0, normalize=normalize)
        model = train.build_adapter(base, adapter, rank=4, activation="swish", activation_params={})
        layer = next(
            m
            for m in model.modules()
            if isinstance(getattr(m, "scaling", None), dict) and m.scaling
        )
        scales[normalize] = float(next(iter(layer.scaling.values())))
        model.unload()
    train.clear_cache()
    assert scales[None] == pytest.approx(16.0 / 4)
    assert scales["slope"] == pytest.approx(16.0 / 4 / 0.5)


def test_a_tune_trial_that_errs_holds_the_confirmation_until_a_rerun_retries_it(
    study_file,
) -> None:
    class Flaky(Truth):
        failed = False

        def __call__(self, cfg: Any, **kw: Any) -> Any:
            lr = kw["training_overrides"].get("learning_rate")
            if lr == 1e-3 and kw["activation"] == "identity" and not self.failed:
                self.failed = True
                raise OSError("a flaky disk")
            return super().__call__(cfg, **kw)

    path = write(study_file)
    handle, result = run(path, Flaky())
    assert "1 tune trial failed with an error" in result.tune_reason
    assert result.confirm_reason == "not started: the tuning is incomplete"
    assert not confirmed(handle.study)
    _, result = run(path, Truth())
    assert result.tune_ran == 1 and result.confirm_ran == 2
    assert_tuned_exactly_once(handle.study, arms=2, points=2)
    assert confirmed(handle.study)["confirm_baseline"].user_attrs[R.TUNED] == {
        "training.learning_rate": 1e-3
    }
