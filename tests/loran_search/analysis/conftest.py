"""Synthetic studies with known values, written straight into Optuna storages.

``Builder.add`` writes one trial in the DESIGN.md record format (``record_version`` 1) with
exactly the per-seed metrics and stability the test chooses, so every statistic of the report
can be checked against an independent computation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

ACTIVATIONS = ("identity", "sinter")
RANKS = (4, 8, 16)
FAMILY = {"identity": "baseline", "sinter": "sinter"}
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
    ) -> optuna.trial.FrozenTrial:
        params: dict[str, Any] = {"activation": activation, "rank": rank}
        spec_params: dict[str, float] = {}
        if activation == "sinter":
            amp = 5e-5 if amplitude is None else amplitude
            params["sinter.amplitude"] = amp
            spec_params = {"amplitude": amp, "frequency": frequency}
        seed_values = dict(seed_values or {})
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
            "seed_metrics": {str(s): {self.metric: v} for s, v in seed_values.items()},
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


@pytest.fixture
def canonical() -> optuna.Study:
    study, b = new_study()
    fill_canonical(b)
    return study
