"""Paired timing rounds (``loran_search.bench_rounds``), checked on a fake clock.

The fake clock only moves when a step runs: each step advances it by the seconds the test says
that call costs, so every measured time is known exactly.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import pytest

from loran_search.bench_rounds import (
    Spread,
    environment,
    paired_ratios,
    ratio_spread,
    rotation,
    run_rounds,
)


class FakeClock:
    """A clock that stands still except when a step advances it; it logs the calls."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []
        self.count: dict[str, int] = {}

    def __call__(self) -> float:
        return self.now

    def step(self, name: str, cost: Callable[[int], float]) -> Callable[[], None]:
        """A step whose ``k``-th call (0-based, warm-up included) takes ``cost(k)`` seconds."""

        def run() -> None:
            k = self.count.get(name, 0)
            self.count[name] = k + 1
            self.calls.append(name)
            self.now += cost(k)

        return run


def _drift(k: int) -> float:
    """A machine whose speed changes every round, by a lot (0.5 s … 4 s per unit of work)."""
    return [1.0, 3.0, 0.5, 4.0, 2.0, 1.5][k % 6]


def test_a_variant_twice_as_slow_in_every_round_gives_2_with_zero_spread() -> None:
    clock = FakeClock()
    steps = {
        "fast": clock.step("fast", _drift),
        "slow": clock.step("slow", lambda k: 2 * _drift(k)),
    }
    times = run_rounds(steps, 9, warmup=1, timer=clock)
    # unpaired, the times alone spread over 8x; paired round by round the ratio is exact
    assert max(times["fast"]) / min(times["fast"]) == 8
    assert ratio_spread(times, "slow", "fast") == Spread(2.0, 2.0, 2.0, 9)
    assert paired_ratios(times, "slow", "fast") == [2.0] * 9


def test_alternating_noise_gives_a_spread_that_covers_it() -> None:
    clock = FakeClock()
    noise = [1.1, 0.9]  # the slow variant's own noise, alternating round by round
    steps = {
        "fast": clock.step("fast", _drift),
        "slow": clock.step("slow", lambda k: 2 * _drift(k) * noise[k % 2]),
    }
    times = run_rounds(steps, 10, warmup=0, timer=clock)
    s = ratio_spread(times, "slow", "fast")
    assert s is not None
    assert s.rounds == 10
    assert s.low == pytest.approx(1.8) and s.high == pytest.approx(2.2)
    assert s.median == pytest.approx(2.0)
    assert s.low <= s.median <= s.high
    assert s.as_json() == {"low": s.low, "high": s.high, "rounds": 10}


def test_rounds_rotate_the_order() -> None:
    clock = FakeClock()
    steps = {n: clock.step(n, lambda k: 1.0) for n in ("a", "b", "c")}
    run_rounds(steps, 4, warmup=1, timer=clock)
    rounds = ["".join(clock.calls[i : i + 3]) for i in range(0, len(clock.calls), 3)]
    assert rounds == ["abc", "abc", "bca", "cab", "abc"]  # warm-up, then rounds 0 … 3
    assert rotation(("a", "b"), 0) == ("a", "b")
    assert rotation(("a", "b"), 1) == ("b", "a")
    assert rotation(("a", "b", "c"), 5) == ("c", "a", "b")
    assert rotation((), 3) == ()


def test_warmup_rounds_are_run_and_not_counted() -> None:
    clock = FakeClock()
    # the first call of each variant (the warm-up round) is 100x slower than the rest
    steps = {
        "a": clock.step("a", lambda k: 100.0 if k == 0 else 1.0),
        "b": clock.step("b", lambda k: 300.0 if k == 0 else 2.0),
    }
    times = run_rounds(steps, 5, warmup=1, timer=clock)
    assert clock.count == {"a": 6, "b": 6}  # warm-up ran
    assert times == {"a": [1.0] * 5, "b": [2.0] * 5}  # and is not among the times
    clock2 = FakeClock()
    steps2 = {"a": clock2.step("a", lambda k: 100.0 if k < 2 else 1.0)}
    assert run_rounds(steps2, 3, warmup=2, timer=clock2) == {"a": [1.0] * 3}


def test_bad_arguments_are_refused() -> None:
    clock = FakeClock()
    steps = {"a": clock.step("a", lambda k: 1.0)}
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        run_rounds(steps, 0, timer=clock)
    with pytest.raises(ValueError, match="warmup must be at least 0"):
        run_rounds(steps, 1, warmup=-1, timer=clock)
    with pytest.raises(ValueError, match="at least one step"):
        run_rounds({}, 1, timer=clock)
    with pytest.raises(ValueError, match="same run_rounds call"):
        paired_ratios({"a": [1.0, 2.0], "b": [1.0]}, "a", "b")
    assert paired_ratios({"a": [1.0], "b": [0.0]}, "a", "b") is None
    assert ratio_spread({"a": [1.0], "b": [0.0]}, "a", "b") is None


def test_real_clock_pairs_rounds() -> None:
    times = run_rounds({"x": lambda: sum(range(2000)), "y": lambda: None}, 5)
    assert [len(v) for v in times.values()] == [5, 5]
    s = ratio_spread(times, "x", "y")
    assert s is not None and s.low <= s.median <= s.high
    assert s.median == statistics.median(paired_ratios(times, "x", "y") or [])


def test_environment_fingerprint() -> None:
    env = environment()
    for key in ("cpu_model", "cores", "usable_cpus", "torch", "threads", "python"):
        assert env[key], key
    assert set(env["load_average"]) == {"start"}
