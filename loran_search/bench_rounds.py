"""Paired timing rounds, shared by ``bench adapter`` and ``bench kinds``.

A benchmark compares *variants* — callables doing one unit of work each (a training step, an
inference forward) — by the ratios of their times. A machine's speed drifts (other processes,
frequency scaling, caches) on a scale of seconds to minutes, slowly compared with one pass over
the variants. So the variants run in **rounds**: each round runs every variant once, in an order
rotated by one place per round (round ``r`` of ``n`` variants starts at variant ``r mod n``, so no
variant always runs first or right after the same neighbour), and a ratio ``a/b`` is taken
*within* each round,

    ρ_r = t_r(a) / t_r(b),    r = 1 … R,

so a slowdown that hits both of a round's steps cancels out of ``ρ_r``. The report is the median
of ``ρ_1 … ρ_R`` with their **range** ``[min ρ_r, max ρ_r]`` and ``R``. If the rounds are
independent draws, the range covers the population median of ``ρ`` with probability
``1 − 2·(1/2)^R`` (the order-statistic interval ``[ρ_(1), ρ_(R)]``, distribution-free: 0.98 for
``R = 7``, 0.998 for ``R = 10``); it is deliberately the conservative choice over the interquartile
range, which with ten-odd rounds is itself a noisy estimate. The first ``warmup`` rounds (same
rotation) are run and not timed: they take the allocations, caches and lazy initialisations.

The clock is injectable (``timer``: any callable returning seconds, :func:`time.perf_counter` by
default), so the pairing can be checked on a fake clock.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Timer = Callable[[], float]
"""A clock: returns the current time in seconds (only differences are used)."""


def rotation(names: Sequence[str], r: int) -> tuple[str, ...]:
    """The order of round ``r``: ``names`` rotated left by ``r mod len(names)`` places."""
    if not names:
        return ()
    k = r % len(names)
    return tuple(names[k:]) + tuple(names[:k])


def run_rounds(
    steps: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    warmup: int = 1,
    timer: Timer = time.perf_counter,
) -> dict[str, list[float]]:
    """Time every step once per round, in rotated order; ``warmup`` untimed rounds first.

    Args:
        steps: ``{variant: callable}``; each call is one unit of work (its result is ignored).
        rounds: Counted rounds ``R`` (at least 1).
        warmup: Rounds run before the counted ones and not recorded (at least 0).
        timer: The clock read just before and just after each call.

    Returns:
        ``{variant: [t_1, …, t_R]}``: ``t_r`` = the variant's time in counted round ``r``
        (``timer()`` after minus before), so index ``r`` pairs the variants of one round.

    Raises:
        ValueError: ``rounds < 1``, ``warmup < 0`` or no steps.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}.")
    if warmup < 0:
        raise ValueError(f"warmup must be at least 0, got {warmup}.")
    names = list(steps)
    if not names:
        raise ValueError("run_rounds needs at least one step to time.")
    for w in range(warmup):
        for name in rotation(names, w):
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in rotation(names, r):
            t0 = timer()
            steps[name]()
            times[name].append(timer() - t0)
    return times


@dataclass(frozen=True)
class Spread:
    """The median of the round-by-round ratios, their range and the number of rounds."""

    median: float
    low: float
    high: float
    rounds: int

    def as_json(self) -> dict[str, float | int]:
        """``{"low", "high", "rounds"}`` (the median goes to ``ratios``)."""
        return {"low": self.low, "high": self.high, "rounds": self.rounds}


def paired_ratios(times: Mapping[str, Sequence[float]], num: str, den: str) -> list[float] | None:
    """``[t_r(num) / t_r(den) for each round r]``; ``None`` if some ``t_r(den)`` is not positive.

    Raises:
        ValueError: the two variants were not timed in the same number of rounds.
    """
    a, b = times[num], times[den]
    if len(a) != len(b):
        raise ValueError(
            f"{num!r} has {len(a)} timed rounds and {den!r} has {len(b)}: ratios pair rounds, "
            "so both must come from the same run_rounds call."
        )
    if not b or any(not t > 0 for t in b):
        return None
    return [x / y for x, y in zip(a, b, strict=True)]


def ratio_spread(times: Mapping[str, Sequence[float]], num: str, den: str) -> Spread | None:
    """The median, min and max of :func:`paired_ratios` and their count (``None`` as there)."""
    rho = paired_ratios(times, num, den)
    if rho is None:
        return None
    return Spread(statistics.median(rho), min(rho), max(rho), len(rho))


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (``os.getloadavg``), rounded; ``None`` if unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def environment() -> dict[str, Any]:
    """The machine a benchmark ran on: enough to tell two runs' conditions apart.

    The fingerprint every trial records (:func:`loran_search.environment.trial_fingerprint`:
    ``cpu_model``, ``cpu_flags``, ``cores``, ``machine``, ``gpus``, ``os``, ``python``, the stack's
    versions, ``threads``, ``deterministic``, ``device``), plus ``usable_cpus`` (this process's
    CPU affinity) and ``load_average`` (``{"start": [1, 5, 15 min]}``; the benchmark adds
    ``"end"``). Torch must be imported (the benchmark has), so ``threads`` is known.
    """
    from loran_search.environment import trial_fingerprint

    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        **trial_fingerprint(),
        "usable_cpus": usable,
        "load_average": {"start": load_average()},
    }
