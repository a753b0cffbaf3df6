"""A fake ``run_training`` for the search mechanics tests (same signature, no model).

Selected in subprocesses with ``LORAN_SEARCH_TRAIN_FN=tests.loran_search.search.fake_train:run``.
Behaviour, from the environment:

* ``FAKE_TRAIN_SLEEP``: seconds slept at each of the 3 evaluations (default 0);
* ``FAKE_TRAIN_DIVERGE_ABOVE``: a sinter amplitude above it diverges (seed 0, step 2);
* ``FAKE_TRAIN_LOG``: a file that gets one line ``activation rank params seed eval_split`` per
  run start;
* ``FAKE_TRAIN_METRIC``: ``nan`` or ``inf``: the accuracy of a sinter amplitude above
  ``FAKE_TRAIN_METRIC_ABOVE`` (default 0: every sinter run) is that value;
* ``FAKE_TRAIN_RAISE``: ``ExceptionName`` (``FileNotFoundError``, ``MemoryError``, …) raised at
  the start of a run whose activation is ``FAKE_TRAIN_RAISE_FOR`` (default: every run);
* ``FAKE_TRAIN_ADAPTER_EARLY``: ``1`` writes a partial adapter file before training (so that an
  interrupted run leaves a half-written adapter folder unless the search removes it).

* ``FAKE_TRAIN_MECHANISM``: ``0`` leaves ``mechanism`` empty (no prediction of ν, no torch).

The metric is a smooth made-up function of the configuration so that runs are distinguishable:
``accuracy = 0.5 + 0.01·rank/8 + 0.1·min(amplitude·100, 1) + 0.001·(seed mod 10)``, 0.02
lower on any split but ``val`` (a held-out split is a little harder). Every completed run also
returns ``eval_split`` (the one asked for), ``examples`` (``task.eval_size`` of them, ids
``fake:<split>:<i>``) and a synthetic ``mechanism``: ``P`` entries Gaussian with standard
deviation :data:`P_STD` (``p_quantiles``: 257 quantiles), ``ν = amplitude/√2`` for ``sinter``
(``ω·std(P) = 10``: ``sin`` averages to 1/2 in square), 0 for ``identity``.
"""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

P_STD = 1e-3
INERT = 1e-3


def p_quantiles(std: float = P_STD) -> list[float]:
    """257 quantiles of a centred Gaussian (the ends at ±4.5 std)."""
    inner = [NormalDist(0.0, std).inv_cdf(k / 256) for k in range(1, 256)]
    return [-4.5 * std, *inner, 4.5 * std]


def mechanism_of(activation: str, params: Mapping[str, float], rank: int) -> dict[str, Any]:
    nu = float(params.get("amplitude", 0.0)) / 2**0.5 if activation == "sinter" else 0.0
    return {
        "nonlinearity_median": nu,
        "nonlinearity_max": nu,
        "p_rms_median": P_STD,
        "p_rms_max": P_STD,
        "stable_rank_median": rank / 2,
        "stable_rank_max": rank / 2,
        "inert": nu < INERT,
        "n_layers": 2,
        "inert_layers": 2 if nu < INERT else 0,
        "nonfinite_layers": 0,
        "layers": [{"module": "q_proj", "nonlinearity": nu}, {"module": "v_proj"}],
        "p_quantiles": p_quantiles(),
        "p_entries": 2 * 64 * 64,
        "nonlinearity_pooled": nu,
        "seconds": 0.001,
    }


def examples_of(cfg: Any, split: str, acc: float, seed: int) -> list[dict[str, Any]]:
    n = int(cfg.task.eval_size or 8)
    out = []
    for i in range(n):
        correct = int(((i * 0.6180339887 + seed * 0.1) % 1.0) < acc)
        out.append(
            {
                "id": f"fake:{split}:{i:05d}",
                "gold": "tech",
                "pred": "tech" if correct else "sport",
                "correct": correct,
                "gold_logprob": -1.0 + acc - 0.001 * i,
            }
        )
    return out


@dataclass
class FakeResult:
    status: str
    metrics: dict[str, float]
    zero_shot: dict[str, float] | None
    stability: dict[str, Any]
    cost: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    adapter_path: str | None = None
    eval_split: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)
    mechanism: dict[str, Any] = field(default_factory=dict)


def run(
    cfg: Any,
    *,
    activation: str,
    activation_params: Mapping[str, float],
    rank: int,
    seed: int,
    training_overrides: Mapping[str, Any] | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    adapter_dir: str | Path | None = None,
    progress: bool = True,
    eval_split: str | None = None,
) -> FakeResult:
    split = eval_split or cfg.task.eval_split
    log = os.environ.get("FAKE_TRAIN_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps([activation, rank, dict(activation_params), seed, split]) + "\n")
    raise_name = os.environ.get("FAKE_TRAIN_RAISE")
    if raise_name and os.environ.get("FAKE_TRAIN_RAISE_FOR", activation) == activation:
        raise getattr(builtins, raise_name)(f"fake {raise_name} for {activation} seed {seed}")
    if adapter_dir is not None and os.environ.get("FAKE_TRAIN_ADAPTER_EARLY") == "1":
        Path(adapter_dir).mkdir(parents=True, exist_ok=True)
        (Path(adapter_dir) / "adapter_model.safetensors.partial").write_bytes(b"half")
    sleep = float(os.environ.get("FAKE_TRAIN_SLEEP", "0"))
    amp = float(activation_params.get("amplitude", 0.0))
    acc = 0.5 + 0.01 * rank / 8 + 0.1 * min(amp * 100, 1.0) + 0.001 * (seed % 10)
    if split != "val":
        acc -= 0.02
    mechanism = {}
    if os.environ.get("FAKE_TRAIN_MECHANISM", "1") != "0":
        mechanism = mechanism_of(activation, activation_params, rank)
    bad_metric = os.environ.get("FAKE_TRAIN_METRIC")
    above = float(os.environ.get("FAKE_TRAIN_METRIC_ABOVE", "0"))
    if bad_metric and activation == "sinter" and amp > above:
        acc = float(bad_metric)
    limit = os.environ.get("FAKE_TRAIN_DIVERGE_ABOVE")
    diverge = limit is not None and amp > float(limit)
    history = []
    steps = int((training_overrides or {}).get("max_steps", cfg.training.max_steps))
    for k in range(1, 4):
        step = max(1, steps * k // 3)
        if diverge and k == 2:
            stab = {
                "diverged": True,
                "diverged_at_step": step,
                "grad_norm_max": 1e9,
                "loss_spikes": 1,
                "final_train_loss": float("inf"),
            }
            return FakeResult(
                "diverged",
                {},
                None,
                stab,
                {"train_seconds": 0.01, "peak_memory_mb": 1.0, "trainable_params": 10 * rank},
                history,
                eval_split=split,
                mechanism=mechanism,
            )
        time.sleep(sleep)
        m = {"accuracy": acc * k / 3, "loss": 1.0 / k}
        history.append({"step": step, "loss": 1.0 / k, "grad_norm": 0.1, "lr": 1e-3, **m})
        if on_eval is not None:
            on_eval(step, m)
    path = None
    if adapter_dir is not None:
        d = Path(adapter_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / "adapter_config.json").write_text(json.dumps({"activation": activation}))
        (d / "adapter_model.safetensors").write_bytes(b"fake")
        path = str(d)
    stab = {
        "diverged": False,
        "diverged_at_step": None,
        "grad_norm_max": 0.1,
        "loss_spikes": 0,
        "final_train_loss": 1.0 / 3,
    }
    return FakeResult(
        "completed",
        {"accuracy": acc, "macro_f1": acc - 0.1},
        None,
        stab,
        {"train_seconds": 0.01 + 3 * sleep, "peak_memory_mb": 1.0, "trainable_params": 10 * rank},
        history,
        path,
        eval_split=split,
        examples=examples_of(cfg, split, acc, seed),
        mechanism=mechanism,
    )
