"""Progress on the console: a bar on a terminal, plain lines in a log file.

Long work says where it stands wherever its output goes:

* **On a terminal** (stderr is a TTY) the per-step bar of a training run is named after what it
  trains, ``trial 7 · confirm · seed 1 (2/3)``, and shows the loss and an ETA; the study bar of
  ``loran-search run`` covers every phase (:func:`loran_search.search.progress.phase_counts`).
* **Without a terminal** (redirected to a file, a batch job) a run prints one line at most every
  :func:`line_interval` seconds (30 by default; ``LORAN_SEARCH_PROGRESS_SECONDS`` sets it),
  ``[progress] trial 7 · confirm · seed 1 (2/3): step 120/300 (40%), elapsed 1m12s, ETA 1m48s,
  loss 0.4123``, and the search prints one line per finished seed (:func:`seed_line`).

ETA is linear: ``elapsed · (max − step) / step``.

*A terminal that reports a size of 0 × 0* (a pty under ``script``, ``COLUMNS=0``, a CI runner)
would make tqdm draw an empty bar; :func:`terminal_size` reads such a size as unknown and the
bars then use a fixed :data:`FALLBACK_COLUMNS`-column layout.

The label of the run in progress (:class:`RunLabel`) travels in a context variable set by the
search around each call of the training function (:func:`run_label`), so the training-function
seam stays ``progress=BOOL``.

This module imports only the standard library (tqdm when a bar is drawn).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TextIO

#: The bar width used when the terminal's size is unknown or 0 × 0.
FALLBACK_COLUMNS = 100
FALLBACK_LINES = 40
#: Seconds between two progress lines of one run without a terminal.
DEFAULT_INTERVAL_S = 30.0
INTERVAL_ENV = "LORAN_SEARCH_PROGRESS_SECONDS"
PREFIX = "[progress]"


@dataclass(frozen=True)
class RunLabel:
    """What a training run is: trial, phase, seed and its place among the trial's seeds.

    Attributes:
        trial: The trial number (``None`` outside a study: ``loran-search train``).
        phase: ``search``, ``confirm`` (or another phase's name).
        seed: The seed.
        index: The seed's position among the trial's seeds, from 1.
        of: How many seeds the trial runs.
    """

    trial: int | None
    phase: str
    seed: int
    index: int = 1
    of: int = 1

    def text(self) -> str:
        """``trial 7 · confirm · seed 1 (2/3)``."""
        head = f"trial {self.trial} · " if self.trial is not None else ""
        return f"{head}{self.phase} · seed {self.seed} ({self.index}/{self.of})"


_LABEL: ContextVar[RunLabel | None] = ContextVar("loran_run_label", default=None)


@contextlib.contextmanager
def run_label(label: RunLabel) -> Iterator[None]:
    """Name the training runs started inside the block (read with :func:`current_label`)."""
    token = _LABEL.set(label)
    try:
        yield
    finally:
        _LABEL.reset(token)


def current_label() -> RunLabel | None:
    """The label set by the innermost :func:`run_label`, if any."""
    return _LABEL.get()


def line_interval() -> float:
    """Seconds between progress lines: ``LORAN_SEARCH_PROGRESS_SECONDS`` or 30 (≥ 0)."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        value = DEFAULT_INTERVAL_S
    return max(0.0, value)


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def terminal_size(stream: Any) -> tuple[int, int] | None:
    """``(columns, lines)`` of the terminal behind ``stream``; ``None`` when unknown or zero.

    ``COLUMNS``/``LINES`` set to a positive number win (as :func:`shutil.get_terminal_size`);
    set to 0 they count as unknown, like a pty reporting 0 × 0.
    """
    env_cols, env_lines = os.environ.get("COLUMNS", ""), os.environ.get("LINES", "")
    if env_cols.strip() == "0" or env_lines.strip() == "0":
        return None
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return None
    cols = int(env_cols) if env_cols.isdigit() else size.columns
    lines = int(env_lines) if env_lines.isdigit() else size.lines
    if cols <= 0 or lines <= 0:
        return None
    return cols, lines


def bar_layout(stream: Any) -> dict[str, Any]:
    """The bar keyword arguments of tqdm for the terminal behind ``stream`` (fixed when unknown)."""
    if terminal_size(stream) is not None:
        return {"dynamic_ncols": True}
    return {"dynamic_ncols": False, "ncols": FALLBACK_COLUMNS, "nrows": FALLBACK_LINES}


def fmt_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def eta_seconds(elapsed: float, done: int, total: int) -> float | None:
    """``elapsed · (total − done) / done`` (``None`` before the first unit)."""
    if done <= 0:
        return None
    return elapsed * max(0, total - done) / done


def emit(line: str, stream: TextIO | None = None) -> None:
    """Print one progress line (flushed: a log file shows it at once)."""
    out = stream if stream is not None else sys.stderr
    print(line, file=out, flush=True)


class StepProgress:
    """The per-step progress of one training run (module docstring).

    Args:
        total: The run's ``max_steps``.
        enabled: ``False``: nothing is shown.
        label: What the run is (default: :func:`current_label`; ``train`` when none).
        stream: Where to write (default ``sys.stderr``); a terminal gets a bar, anything
            else lines.
        interval: Seconds between lines (default :func:`line_interval`).
        clock: The time source (tests pass a fake one).
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        label: RunLabel | None = None,
        stream: TextIO | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = int(total)
        self.stream = stream if stream is not None else sys.stderr
        self.label = label if label is not None else current_label()
        self.name = self.label.text() if self.label is not None else "train"
        self.interval = line_interval() if interval is None else float(interval)
        self.clock = clock
        self.start = clock()
        self.last_line = self.start
        self.step = 0
        self.bar: Any = None
        self.mode = "off"
        if enabled:
            self.mode = "bar" if is_terminal(self.stream) else "lines"
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total, desc=self.name, file=self.stream, leave=False,
                **bar_layout(self.stream),
            )  # fmt: skip

    def update(self, step: int, **postfix: str) -> None:
        """Step ``step`` (from 1) is done; ``postfix`` (``loss=…``) is shown beside it."""
        self.step = int(step)
        if self.mode == "bar":
            self.bar.update(self.step - self.bar.n)
            self.bar.set_postfix(postfix, refresh=False)
        elif self.mode == "lines":
            now = self.clock()
            if now - self.last_line >= self.interval or self.step == self.total:
                self.last_line = now
                emit(self.line(now, postfix), self.stream)

    def line(self, now: float, postfix: dict[str, str] | None = None) -> str:
        """``[progress] NAME: step i/max (p%), elapsed …, ETA …[, key value …]``."""
        elapsed = now - self.start
        eta = eta_seconds(elapsed, self.step, self.total)
        pct = 100 * self.step / self.total if self.total else 100.0
        extra = "".join(f", {k} {v}" for k, v in (postfix or {}).items())
        return (
            f"{PREFIX} {self.name}: step {self.step}/{self.total} ({pct:.0f}%), elapsed "
            f"{fmt_seconds(elapsed)}, ETA {fmt_seconds(eta) if eta is not None else '?'}{extra}"
        )

    def close(self) -> None:
        """Remove the bar (lines need no closing)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def seed_line(label: RunLabel, seconds: float, seed_seconds: list[float], status: str) -> str:
    """The line printed when one seed of a trial has finished (no terminal).

    ``[progress] trial 7 · confirm · seed 1 (2/3): completed in 2m01s; trial ETA 2m01s``; the
    trial's ETA is the mean seconds of its finished seeds times the seeds left.
    """
    left = label.of - label.index
    mean = sum(seed_seconds) / len(seed_seconds) if seed_seconds else seconds
    eta = f"; trial ETA {fmt_seconds(mean * left)}" if left > 0 else "; trial done"
    return f"{PREFIX} {label.text()}: {status} in {fmt_seconds(seconds)}{eta}"
