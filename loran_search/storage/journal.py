"""Journal files: opening one, checking and mending a cut last line, the lock that keeps it so.

A process that stops mid-write (killed, disk full) leaves a cut last line. Optuna skips it on
read but appends the next record onto it, after which the file cannot be read at all. Opening a
journal therefore checks the last line before anything is written and repairs it (after copying
the file to ``NAME.bak-YYYYmmdd-HHMMSS``), and every later append checks again under the
journal's lock; a journal already broken in the middle is refused with the line number. The
journal has no heartbeat table: the search keeps its own heartbeat in a trial system attribute.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from loran_search.storage.errors import JournalCorruptError, StorageError
from loran_search.storage.urls import mask_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from optuna.storages import BaseStorage

    from loran_search.storage.urls import StorageURL

_RECORD_START = b'{"op_code":'  # how every record Optuna's journal writes begins


def open_journal(parsed: StorageURL, *, log: Callable[[str], None]) -> BaseStorage:
    """Open a journal storage whose appends first mend a cut last line (see the module)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = parsed.path
    assert path is not None
    can_repair = os.access(path.parent, os.W_OK | os.X_OK) and (
        not path.exists() or os.access(path, os.W_OK)
    )
    for note in check_journal(path, repair=can_repair):
        log(note)
    try:
        backend = JournalFileBackend(str(path), lock_obj=_tail_checking_lock_class()(path, log))
        return JournalStorage(backend)
    except ValueError as err:  # json.JSONDecodeError, "Invalid log format.", bad UTF-8
        _raise_if_corrupt(path, parsed.shown)
        raise StorageError(
            f"Cannot read the journal {path} (storage {parsed.shown}): {err}.",
            fix="Check the file; a copy of the study may be in a NAME.bak-* file beside it.",
        ) from None


def check_journal(path: Path, *, repair: bool = True) -> list[str]:
    """Check a journal's last line and, with ``repair``, mend a cut one before anything is written.

    A cut last line (no newline, or not a whole record) is what a process stopped mid-write
    leaves; Optuna skips it on read but would append the next record onto it. The file is first
    copied to ``NAME.bak-YYYYmmdd-HHMMSS`` beside it; then a whole record that only lacks its
    newline gets one, a cut record followed by a whole one (an append that already happened) is
    reduced to the whole one, and anything else is cut off. Done under the journal's lock, so no
    worker appends meanwhile.

    Args:
        path: The journal file (a missing or empty file is fine).
        repair: Mend the file; with ``False`` only report (a read-only journal, which nobody
            can append to, is safe to read as it is).

    Returns:
        One line per thing found or done, for the caller to show (empty: nothing to do).

    Raises:
        JournalCorruptError: A broken record before the last line (exit 2): the message
            names the line and how to mend the file.
    """
    if not path.is_file() or _whole(_last_line(path)[1]):
        return []
    if not repair:
        return [
            f"The journal {path} ends with a cut line (a write that did not finish); it is read "
            "without it but not repaired, since the file or its folder is read-only."
        ]
    from optuna.storages.journal import JournalFileSymlinkLock

    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        note = _repair_tail_locked(path)
    finally:
        lock.release()
    return [note] if note else []


def _last_line(path: Path) -> tuple[int, bytes]:
    """``(offset, bytes)`` of the file's last line, its newline (if any) included."""
    buf = b""
    with path.open("rb") as f:
        start = f.seek(0, os.SEEK_END)
        while start > 0:
            step = min(1 << 16, start)
            start -= step
            f.seek(start)
            buf = f.read(step) + buf
            cut = buf.rfind(b"\n", 0, len(buf) - 1)
            if cut != -1:
                return start + cut + 1, buf[cut + 1 :]
    return 0, buf


def _whole(line: bytes) -> bool:
    """Whether ``line`` is a whole record and its newline, or empty (an empty file's)."""
    return not line or (line.endswith(b"\n") and _is_record(line))


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _repair_tail_locked(path: Path) -> str | None:
    """Mend a cut last line; the caller holds the journal's lock. Returns the note, if any."""
    offset, line = _last_line(path)
    if _whole(line):
        return None
    _raise_if_corrupt(path, f"journal:{path}")  # a broken line before this one: mending won't do
    with path.open("rb") as f:
        number = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    number += 0 if line.endswith(b"\n") else 1
    backup = _backup(path)
    body = line.rstrip(b"\r\n")
    cut = _cut_prefix(body)
    if not line.endswith(b"\n") and _is_record(body):
        keep, what = body + b"\n", "lacked its newline (added it; the record is kept)"
    elif cut:
        keep = body[cut:] + b"\n"
        what = (
            f"began with {cut} bytes of a cut record onto which a later record was appended "
            "(removed the cut part; the later record is kept)"
        )
    else:
        keep = b""
        what = (
            f"was cut off mid-write ({len(line)} bytes of a record whose write did not finish; "
            "removed them so that new records do not join it)"
        )
    with path.open("r+b") as f:
        f.truncate(offset)
        f.seek(offset)
        f.write(keep)
        f.flush()
        os.fsync(f.fileno())
    return (
        f"Repaired the journal {path}: its last line (line {number}) {what}. The file as it "
        f"was is kept at {backup}."
    )


def _cut_prefix(body: bytes) -> int:
    """Bytes of a cut record before a whole one in ``body`` (0: not that shape).

    Optuna writes every record as compact JSON starting with ``{"op_code":``; inside a JSON
    string those quotes would be escaped, so a later occurrence starts an appended record.
    """
    start = body.find(_RECORD_START, 1)
    return start if start > 0 and _is_record(body[start:]) else 0


def _backup(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.bak-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.bak-{stamp}-{n}")
    shutil.copy2(path, backup)
    return backup


def _raise_if_corrupt(path: Path, shown: str) -> None:
    """Raise :class:`JournalCorruptError` if a line other than the last is not a whole record."""
    total = 0
    first_bad: tuple[int, int] | None = None  # (line number, bytes of its cut record)
    corrupt: tuple[int, int] | None = None
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            total = number
            if first_bad is not None:
                corrupt = corrupt or first_bad  # a line follows the broken one
                continue
            if not _whole(line):
                first_bad = (number, _cut_prefix(line.rstrip(b"\r\n")))
    if corrupt is None:
        return
    number, cut = corrupt
    keep = (
        f" To keep them instead, delete the first {cut} characters of line {number} in an "
        "editor (a cut record; the rest of the line is a whole one)."
        if cut
        else ""
    )
    raise JournalCorruptError(
        f"The journal {path} (storage {mask_url(shown)}) is corrupt at line {number} of "
        f"{total}: that line is not a whole record (a write was appended onto a line cut off "
        "mid-write), so Optuna cannot read the file.",
        fix=f"Keep a copy and cut the file before that line: cp {path} {path}.bak && head -n "
        f"{number - 1} {path}.bak > {path} (this drops lines {number}-{total}).{keep}",
    )


@functools.cache
def _tail_checking_lock_class() -> type:
    from optuna.storages.journal import JournalFileSymlinkLock

    class TailCheckingLock(JournalFileSymlinkLock):
        """Optuna's journal lock that, once held, mends a cut last line before the append.

        A worker that keeps a journal open would otherwise append onto the cut line another
        worker left when it was killed mid-write.
        """

        def __init__(self, path: Path, log: Callable[[str], None]) -> None:
            super().__init__(str(path))
            self._path = path
            self._log = log

        def acquire(self) -> bool:
            acquired = super().acquire()
            try:
                if _last_byte(self._path) not in (b"", b"\n"):
                    note = _repair_tail_locked(self._path)
                    if note:
                        self._log(note)
            except BaseException:
                self.release()
                raise
            return acquired

    return TailCheckingLock


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(max(f.seek(0, os.SEEK_END) - 1, 0))
        return f.read(1)
