"""Progress on the console (issue 22): lines without a terminal, a named bar on one, 0×0 ttys."""

from __future__ import annotations

import io
import os
import select

import pytest

from loran_search import console as C


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_without_a_terminal_name_the_run_and_come_at_the_interval() -> None:
    out, clock = io.StringIO(), Clock()
    label = C.RunLabel(trial=7, phase="confirm", seed=101, index=2, of=3)
    p = C.StepProgress(10, label=label, stream=out, interval=30, clock=clock)
    assert p.mode == "lines" and p.bar is None
    for step in range(1, 11):
        clock.now += 10  # 10 s a step: a line at 30 s, 60 s, 90 s and the last step
        p.update(step, loss="0.5000")
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "[progress] trial 7 · confirm · seed 101 (2/3): step 3/10 (30%), elapsed 30s, ETA 1m10s,"
        " loss 0.5000",
        "[progress] trial 7 · confirm · seed 101 (2/3): step 6/10 (60%), elapsed 1m00s, ETA 40s,"
        " loss 0.5000",
        "[progress] trial 7 · confirm · seed 101 (2/3): step 9/10 (90%), elapsed 1m30s, ETA 10s,"
        " loss 0.5000",
        "[progress] trial 7 · confirm · seed 101 (2/3): step 10/10 (100%), elapsed 1m40s, ETA 0s,"
        " loss 0.5000",
    ]


def test_disabled_progress_prints_nothing_and_the_label_comes_from_the_context() -> None:
    out = io.StringIO()
    C.StepProgress(5, enabled=False, stream=out).update(5)
    assert out.getvalue() == ""
    label = C.RunLabel(trial=None, phase="train", seed=0)
    with C.run_label(label):
        assert C.current_label() == label
        p = C.StepProgress(5, stream=out, interval=1e9)
    assert C.current_label() is None
    assert p.name == "train · seed 0 (1/1)"
    p.update(5)
    assert out.getvalue().startswith("[progress] train · seed 0 (1/1): step 5/5 (100%)")


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(C.INTERVAL_ENV, "5")
    assert C.line_interval() == 5.0
    monkeypatch.setenv(C.INTERVAL_ENV, "soon")
    assert C.line_interval() == C.DEFAULT_INTERVAL_S
    monkeypatch.setenv(C.INTERVAL_ENV, "-3")
    assert C.line_interval() == 0.0


def test_seed_line_and_time_formats() -> None:
    label = C.RunLabel(trial=3, phase="search", seed=1, index=1, of=3)
    assert C.seed_line(label, 61.0, [61.0], "completed") == (
        "[progress] trial 3 · search · seed 1 (1/3): completed in 1m01s; trial ETA 2m02s"
    )
    last = C.RunLabel(trial=3, phase="search", seed=2, index=3, of=3)
    assert C.seed_line(last, 5.0, [5.0], "diverged").endswith("diverged in 5s; trial done")
    assert [C.fmt_seconds(s) for s in (0, 59.4, 60, 3599, 3600, 7260)] == [
        "0s", "59s", "1m00s", "59m59s", "1h00m", "2h01m",
    ]  # fmt: skip
    assert C.eta_seconds(10.0, 0, 5) is None and C.eta_seconds(10.0, 2, 5) == 15.0


def _read(fd: int) -> str:
    data = b""
    while select.select([fd], [], [], 0.2)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


def test_a_zero_size_terminal_gets_a_fixed_width_named_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    master, slave = os.openpty()  # a new pty reports 0 × 0, as under `script`
    stream = os.fdopen(slave, "w", encoding="utf-8")
    try:
        assert os.get_terminal_size(slave) == (0, 0)
        assert C.terminal_size(stream) is None
        assert C.bar_layout(stream) == {
            "dynamic_ncols": False, "ncols": C.FALLBACK_COLUMNS, "nrows": C.FALLBACK_LINES,
        }  # fmt: skip
        label = C.RunLabel(trial=2, phase="search", seed=0, index=1, of=2)
        p = C.StepProgress(4, label=label, stream=stream)
        assert p.mode == "bar"
        for step in range(1, 5):
            p.update(step, loss="1.0")
        stream.flush()
        shown = _read(master)
        p.close()
        bars = [line for line in shown.replace("\r", "\n").split("\n") if "/4" in line]
        assert bars and all(line.startswith("trial 2 · search · seed 0 (1/2):") for line in bars)
        assert {len(line) for line in bars} == {C.FALLBACK_COLUMNS}  # drawn, at the fixed width
    finally:
        stream.close()
        os.close(master)


def test_columns_zero_counts_as_unknown_and_a_sized_terminal_is_dynamic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    stream = os.fdopen(slave, "w", encoding="utf-8")
    try:
        monkeypatch.delenv("LINES", raising=False)
        monkeypatch.delenv("COLUMNS", raising=False)
        assert C.terminal_size(stream) == (120, 30)
        assert C.bar_layout(stream) == {"dynamic_ncols": True}
        monkeypatch.setenv("COLUMNS", "0")
        assert C.terminal_size(stream) is None
        monkeypatch.setenv("COLUMNS", "80")
        assert C.terminal_size(stream) == (80, 30)
        assert C.terminal_size(io.StringIO()) is None  # not a terminal at all
    finally:
        stream.close()
        os.close(master)
