"""A stand-in for the training function: dry-run a study's mechanics without a model.

**The seam.** A study trains through one function, ``loran_search.train.run_training``;
``LORAN_SEARCH_TRAIN_FN=module:function`` (or ``path/to/file.py:function``) swaps it for another
with the same keywords (README, "The training-function seam"). :func:`run` is such a function:
it trains nothing, loads no model and imports no torch, and returns in milliseconds a result
with every key the search and the report read. Everything around the training — the study file,
the sampler and the queue, baselines, retries, pruning, confirmation, tuning, several workers
on one storage, the trial record and the report — runs for real. The project's own tests run
the search on it; use it to check a study file, a storage or a cluster set-up before a GPU
spends hours on them::

    export LORAN_SEARCH_TRAIN_FN=loran_search.testing:run
    loran-search run study.yaml --storage sqlite:///dry.db       # search, confirm, report
    FAKE_TRAIN_DIVERGE_ABOVE=0.01 loran-search run study.yaml --storage sqlite:///dry2.db

(a storage of its own keeps the made-up results apart from real ones; the second run rehearses
divergence, see the variables below). In Python the same function is the ``train_fn`` a worker
takes.

**What it returns** (a :class:`FakeResult`, the fields of ``RunResult``), from a made-up smooth
function of the configuration so that runs are distinguishable:

* ``metrics``: ``accuracy = 0.5 + 0.01·rank/8 + 0.1·min(amplitude·100, 1) + 0.001·(seed mod
  10)`` (``amplitude`` = the ``amplitude`` parameter, 0 without one), 0.02 lower on any split
  but ``val`` (a held-out split is a little harder), and ``macro_f1 = accuracy − 0.1``; the
  study's ``metric`` must be one of the two;
* three evaluations at ``max_steps·k/3`` (``on_eval`` is called at each, so pruners work), a
  ``history`` row per evaluation and a stable ``stability`` record;
* ``eval_split`` (the one asked for), ``examples`` (``task.eval_size`` of them, default 8, ids
  ``fake:<split>:<i>``, ``correct`` drawn so that their mean is about ``accuracy``);
* a synthetic ``mechanism``: ``P`` entries Gaussian with standard deviation :data:`P_STD`
  (``p_quantiles``: 257 quantiles, ends at ±4.5·std), ``ν = amplitude/√2`` for ``sinter``
  (``ω·std(P) = 10``: ``sin`` averages to 1/2 in square), 0 for every other activation, inert
  below :data:`loran_search.record.INERT_THRESHOLD`;
* with ``adapter_dir``: a two-file fake adapter folder (``adapter_config.json``,
  ``adapter_model.safetensors``).

**Environment variables** it reads at each call (all optional), to rehearse failures:

* ``FAKE_TRAIN_SLEEP``: seconds slept at each of the 3 evaluations (default 0), so that workers
  overlap and heartbeats run;
* ``FAKE_TRAIN_DIVERGE_ABOVE``: a run whose ``amplitude`` exceeds it diverges at the second
  evaluation (status ``diverged``, infinite final loss);
* ``FAKE_TRAIN_METRIC``: ``nan`` or ``inf``: the accuracy of a ``sinter`` run whose amplitude
  exceeds ``FAKE_TRAIN_METRIC_ABOVE`` (default 0: every sinter run) is that value;
* ``FAKE_TRAIN_RAISE``: the name of a built-in exception (``FileNotFoundError``,
  ``MemoryError``, …) raised at the start of a run whose activation is ``FAKE_TRAIN_RAISE_FOR``
  (default: every run);
* ``FAKE_TRAIN_ADAPTER_EARLY``: ``1`` writes a partial adapter file before training, so that an
  interrupted run leaves a half-written adapter folder unless the search removes it;
* ``FAKE_TRAIN_MECHANISM``: ``0`` leaves ``mechanism`` empty (no prediction of ``ν``);
* ``FAKE_TRAIN_LOG``: a file that gets one JSON line ``[activation, rank, params, seed,
  eval_split]`` per run start (what was trained, in order).

This module imports only the standard library and :mod:`loran_search.record`.
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

from loran_search.record import INERT_THRESHOLD

__all__ = ["P_STD", "FakeResult", "examples_of", "mechanism_of", "p_quantiles", "run"]

#: Standard deviation of the made-up entries of ``P = B·A``.
P_STD = 1e-3


def p_quantiles(std: float = P_STD) -> list[float]:
    """257 quantiles of a centred Gaussian of standard deviation ``std`` (the ends at ±4.5·std)."""
    inner = [NormalDist(0.0, std).inv_cdf(k / 256) for k in range(1, 256)]
    return [-4.5 * std, *inner, 4.5 * std]


def mechanism_of(activation: str, params: Mapping[str, float], rank: int) -> dict[str, Any]:
    """The synthetic mechanism summary of a run (``RunResult.mechanism``'s keys)."""
    nu = float(params.get("amplitude", 0.0)) / 2**0.5 if activation == "sinter" else 0.0
    inert = nu < INERT_THRESHOLD
    return {
        "nonlinearity_median": nu,
        "nonlinearity_max": nu,
        "p_rms_median": P_STD,
        "p_rms_max": P_STD,
        "stable_rank_median": rank / 2,
        "stable_rank_max": rank / 2,
        "inert": inert,
        "n_layers": 2,
        "inert_layers": 2 if inert else 0,
        "nonfinite_layers": 0,
        "layers": [{"module": "q_proj", "nonlinearity": nu}, {"module": "v_proj"}],
        "p_quantiles": p_quantiles(),
        "p_entries": 2 * 64 * 64,
        "nonlinearity_pooled": nu,
        "seconds": 0.001,
    }


def examples_of(cfg: Any, split: str, acc: float, seed: int) -> list[dict[str, Any]]:
    """``task.eval_size`` per-example outcomes (default 8), ``correct`` with a mean near ``acc``."""
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
    """What :func:`run` returns: the fields of ``loran_search.train.RunResult`` the search reads."""

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
    """One fake training run with the training function's keywords (module docstring).

    Args:
        cfg: The loaded study (``task.eval_split``, ``task.eval_size``, ``training.max_steps``
            are read).
        activation: The activation's registry name.
        activation_params: Its parameters (``amplitude`` moves the metric).
        rank: The adapter rank.
        seed: The seed.
        training_overrides: Searched training values (``max_steps`` is honoured).
        on_eval: Called ``on_eval(step, metrics)`` at each of the 3 evaluations.
        adapter_dir: Where to write the fake adapter.
        progress: Ignored (nothing to show).
        eval_split: The split to evaluate (default ``task.eval_split``).

    Raises:
        BaseException: The built-in named by ``FAKE_TRAIN_RAISE``, when set.
    """
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
    cost = {"train_seconds": 0.01, "peak_memory_mb": 1.0, "trainable_params": 10 * rank}
    history: list[dict[str, Any]] = []
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
                "diverged", {}, None, stab, cost, history, eval_split=split, mechanism=mechanism
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
        {**cost, "train_seconds": 0.01 + 3 * sleep},
        history,
        path,
        eval_split=split,
        examples=examples_of(cfg, split, acc, seed),
        mechanism=mechanism,
    )
