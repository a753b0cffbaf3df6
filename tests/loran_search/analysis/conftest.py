"""Synthetic studies with known values, written straight into Optuna storages.

``Builder.add`` writes one trial in the DESIGN.md record format (``record_version`` 1) with
exactly the per-seed metrics and stability the test chooses, so every statistic of the report
can be checked against an independent computation. With ``examples=`` it also writes per-example
outcomes (user attrs ``examples.<seed>``, columnar, optionally in ``examples.<seed>.<part>``
chunks) and derives the seed metrics from them, the way the search records them; ``mechanism=``
writes the per-seed mechanism figures; ``role="confirm"``/``"confirm_baseline"`` with
``confirm_of=`` writes confirmation trials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.analysis.configurations import build_tables
from loran_search.analysis.records import load_records

optuna.logging.set_verbosity(optuna.logging.WARNING)

ACTIVATIONS = ("identity", "relu", "sinter")
RANKS = (4, 8, 16)
FAMILY = {"identity": "baseline", "relu": "baseline", "sinter": "sinter"}
DIST = {
    "activation": CategoricalDistribution(ACTIVATIONS),
    "rank": CategoricalDistribution(RANKS),
    "sinter.amplitude": FloatDistribution(1e-7, 1e-1, log=True),
    "sinter.frequency": FloatDistribution(1e-1, 1e5, log=True),
}


class Builder:
    """Adds DESIGN.md trial records to ``study``."""

    def __init__(self, study: optuna.Study, metric: str = "accuracy") -> None:
        self.study = study
        self.metric = metric

    def add(
        self,
        activation: str,
        rank: int,
        seed_values: Mapping[int, float] | None,
        *,
        amplitude: float | None = None,
        frequency: float = 1e4,
        state: TrialState = TrialState.COMPLETE,
        diverged: Mapping[int, bool] | None = None,
        spikes: Mapping[int, int] | None = None,
        grad: float = 1.0,
        history: bool = True,
        seconds: float = 10.0,
        failure: str | None = None,
        drop: tuple[str, ...] = (),
        role: str | None = None,
        examples: Mapping[int, Sequence[float]] | None = None,
        logprob: Mapping[int, Sequence[float]] | None = None,
        ids: Sequence[str] | Mapping[int, Sequence[str]] | None = None,
        chunk: int | None = None,
        mechanism: Mapping[int, Mapping[str, Any]] | float | None = None,
        eval_split: str | None = None,
        confirm_of: Sequence[int] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> optuna.trial.FrozenTrial:
        params: dict[str, Any] = {"activation": activation, "rank": rank}
        spec_params: dict[str, float] = {}
        if activation == "sinter":
            amp = 5e-5 if amplitude is None else amplitude
            params["sinter.amplitude"] = amp
            spec_params = {"amplitude": amp, "frequency": frequency}
        seed_values = dict(seed_values or {})
        example_attrs: dict[str, Any] = {}
        companions: dict[int, float] = {}
        if examples is not None:
            example_attrs, means, companions = examples_attrs(
                examples, logprob=logprob, ids=ids, chunk=chunk
            )
            for s, v in means.items():
                seed_values.setdefault(s, v)
        diverged = dict(diverged or {})
        spikes = dict(spikes or {})
        seeds = sorted(set(seed_values) | set(diverged))
        ua: dict[str, Any] = {
            "record_version": 1,
            "role": role or ("baseline" if activation == "identity" else "candidate"),
            "activation_spec": {
                "name": activation,
                "family": FAMILY[activation],
                "params": spec_params,
            },
            "seed_metrics": {
                str(s): {
                    self.metric: v,
                    **({"gold_logprob_mean": companions[s]} if s in companions else {}),
                }
                for s, v in seed_values.items()
            },
            "stability": {
                str(s): {
                    "diverged": bool(diverged.get(s, False)),
                    "grad_norm_max": grad * (100.0 if diverged.get(s) else 1.0),
                    "loss_spikes": int(spikes.get(s, 0)),
                    "final_train_loss": 1.0,
                }
                for s in seeds
            },
            "cost": {"train_seconds": seconds, "peak_memory_mb": 100.0, "trainable_params": 10},
        }
        if history:
            base = 2.0 if activation == "identity" else 1.9
            ua["history"] = {
                str(s): [
                    {"step": k, "loss": base * math.exp(-k / 20) + 0.01 * s, "grad_norm": 1.0,
                     "lr": 1e-4}
                    for k in range(0, 60, 10)
                ]
                for s in seed_values
            }  # fmt: skip
        if failure is not None:
            ua["failure"] = failure
        ua.update(example_attrs)
        if mechanism is not None:
            if not isinstance(mechanism, Mapping):
                mechanism = {s: mechanism_figures(float(mechanism)) for s in seeds}
            ua["mechanism"] = {str(s): dict(m) for s, m in mechanism.items()}
        if eval_split is not None:
            ua["eval_split"] = eval_split
        if confirm_of is not None:
            ua["confirm_of"] = list(confirm_of)
        ua.update(attrs or {})
        for key in drop:
            ua.pop(key, None)
        finite = [v for v in seed_values.values() if math.isfinite(v)]
        value = sum(finite) / len(finite) if state == TrialState.COMPLETE and finite else None
        multi = len(self.study.directions) > 1  # objectives: [metric, train_seconds]
        trial = optuna.trial.create_trial(
            state=state,
            value=None if multi else value,
            values=[value, seconds] if multi and value is not None else None,
            params=params,
            distributions={k: DIST[k] for k in params},
            user_attrs=ua,
        )
        self.study.add_trial(trial)
        return trial


def examples_attrs(
    outcomes: Mapping[int, Sequence[float]],
    *,
    logprob: Mapping[int, Sequence[float]] | None = None,
    ids: Sequence[str] | Mapping[int, Sequence[str]] | None = None,
    chunk: int | None = None,
) -> tuple[dict[str, Any], dict[int, float], dict[int, float]]:
    """Classification per-example user attrs, and the per-seed accuracy and companion means.

    Args:
        outcomes: ``{seed: [0/1 correct per example]}``.
        logprob: ``{seed: [gold log-likelihood per example]}``; default ``log 0.7`` when right,
            ``log 0.3`` when wrong.
        ids: The example ids (one list for every seed, or per seed); default ``ex0000``, ...
        chunk: Store each seed in ``examples.<seed>.<part>`` parts of at most this many JSON
            characters, with the index ``examples.<seed>``, as the writer
            (:func:`loran_search.record.examples_attrs`) does for long ones.
    """
    attrs: dict[str, Any] = {}
    means: dict[int, float] = {}
    companions: dict[int, float] = {}
    for s, vals in outcomes.items():
        correct = [int(v) for v in vals]
        if isinstance(ids, Mapping):
            these = [str(i) for i in ids[s]]
        elif ids is not None:
            these = [str(i) for i in ids]
        else:
            these = [f"ex{i:04d}" for i in range(len(correct))]
        lp = (
            [float(x) for x in logprob[s]]
            if logprob is not None
            else [math.log(0.7) if c else math.log(0.3) for c in correct]
        )
        cols = {
            "id": these,
            "correct": correct,
            "gold_logprob": lp,
            "pred": ["a" if c else "b" for c in correct],
            "gold": ["a"] * len(correct),
        }
        means[s] = float(np.mean(correct))
        companions[s] = float(np.mean(lp))
        if chunk is None:
            attrs[f"examples.{s}"] = cols
        else:
            rows = [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
            attrs.update(R.examples_attrs(s, rows, limit=chunk))
    return attrs, means, companions


def mechanism_figures(nu: float, p999: float = 0.05) -> dict[str, Any]:
    """One seed's mechanism record: effective non-linearity ``nu``, ``|P|`` scale ``p999``."""
    return {
        "nonlinearity_median": nu, "nonlinearity_max": nu * 1.5, "p_rms_median": p999 / 4,
        "p_rms_max": p999 / 3, "p_abs_p999_median": p999 / 2, "p_abs_p999_max": p999,
        "omega_p_rms_median": None, "stable_rank_median": 3.0, "stable_rank_max": 4.0,
        "stable_rank_lora_median": 2.5, "stable_rank_lora_max": 3.5, "inert": nu < 1e-3,
        "n_layers": 4, "p_quantiles": list(np.linspace(-p999, p999, 257)),
        "nonlinearity_pooled": nu, "seconds": 0.01,
    }  # fmt: skip


def new_study(storage: Any = None, name: str = "synthetic", metric: str | None = "accuracy",
              direction: str = "maximize") -> tuple[optuna.Study, Builder]:  # fmt: skip
    study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    if metric is not None:
        study.set_user_attr("metric", metric)
        study.set_user_attr("direction", direction)
    return study, Builder(study, metric or "accuracy")


# The canonical synthetic study: baseline at rank 8 on seeds 0-2, Sinter over a grid of
# amplitudes; amplitudes ≥ 1e-2 diverge on some seeds (their trials FAIL).
BASE8 = {0: 0.70, 1: 0.72, 2: 0.68}
GAINS = {  # amplitude -> per-seed gain over the baseline
    1e-5: {0: 0.001, 1: -0.002, 2: 0.0},
    1e-4: {0: 0.010, 1: 0.020, 2: 0.015},
    1e-3: {0: 0.030, 1: 0.041, 2: 0.035},
}


def fill_canonical(b: Builder) -> None:
    b.add("identity", 8, BASE8)
    for amp, gains in GAINS.items():
        b.add("sinter", 8, {s: BASE8[s] + g for s, g in gains.items()}, amplitude=amp,
              spikes={1: 1} if amp == 1e-3 else None)  # fmt: skip
    b.add("sinter", 8, {0: 0.5, 2: 0.52}, amplitude=1e-2, diverged={1: True},
          state=TrialState.FAIL, failure="seed 1 diverged at step 12", history=False)  # fmt: skip
    b.add("sinter", 8, {}, amplitude=5e-2, diverged={0: True}, state=TrialState.FAIL,
          failure="seed 0 diverged at step 3", history=False)  # fmt: skip


def curse_study(seed=20, n_null=20, n=200, top=4):
    """``n_null`` configurations with no effect and one with a real one, searched then confirmed.

    Every null configuration draws its outcomes from the baseline's own distribution (per-example
    difficulty shared); the real one has +15 accuracy points. The top ``top`` by search gain and
    the real one are retrained on fresh seeds and evaluated on fresh outcomes (the test split).
    Five confirmation seeds: the decisive t on seed means (4 df) sees +15 points under Holm over
    five confirmed configurations; with three (2 df) it could not (issue 19).
    """
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.8, n)
    seeds, confirm_seeds = (0, 1, 2), (100, 101, 102, 103, 104)
    study, b = new_study()

    def draw(delta, which):
        return {s: (rng.random(n) < np.clip(p + delta, 0, 1)).astype(int) for s in which}

    b.add("identity", 8, None, examples=draw(0.0, seeds), eval_split="val", mechanism=0.0)
    amps = np.geomspace(1e-5, 1e-2, n_null + 1)
    real = float(amps[14])
    effect = {float(a): 0.15 if float(a) == real else 0.0 for a in amps}
    for a in amps:
        b.add("sinter", 8, None, amplitude=float(a), examples=draw(effect[float(a)], seeds),
              eval_split="val", mechanism=float(a) * 5)  # fmt: skip
    configs, _, _ = build_tables(load_records(study), auditor=lambda n, p: math.nan)
    chosen = list(configs.head(top)["amplitude"].astype(float))
    if not any(np.isclose(real, chosen)):
        chosen.append(real)
    b.add("identity", 8, None, examples=draw(0.0, confirm_seeds), eval_split="test",
          role="confirm_baseline", mechanism=0.0)  # fmt: skip
    for a in chosen:
        number = int(configs.loc[np.isclose(configs["amplitude"], a), "trials"].iloc[0])
        delta = effect[min(effect, key=lambda k: abs(k - a))]
        b.add("sinter", 8, None, amplitude=a, examples=draw(delta, confirm_seeds),
              eval_split="test", role="confirm", confirm_of=[number], mechanism=a * 5)  # fmt: skip
    return study, configs, real, chosen


@pytest.fixture(scope="session")
def curse_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report (every format) of :func:`curse_study`, written once per session."""
    from loran_search.analysis import write_report

    study, _, _, _ = curse_study()
    out = tmp_path_factory.mktemp("curse") / "report"
    write_report(storage=study._storage, study_name=study.study_name, out_dir=out,
                 dashboard=False)  # fmt: skip
    return out


@pytest.fixture
def canonical() -> optuna.Study:
    study, b = new_study()
    fill_canonical(b)
    return study
