"""Optuna storages from a URL: SQLite (default), a journal file, PostgreSQL or MySQL.

=====================================  ===========================================================
``sqlite:///runs/loran-search.db``     one machine; RDB storage (heartbeats work); parent
                                       directory created on first use
``journal:runs/study.journal``         several local processes (or machines on a shared file
                                       system); Optuna's ``JournalFileBackend``
``postgresql://user@host:5432/db``     several machines: every worker points at one server
``mysql://user:pw@host/db``            idem (needs a MySQL driver such as PyMySQL installed;
                                       ``mariadb://`` works the same)
=====================================  ===========================================================

A leading ``~`` in a SQLite or journal path is the user's home directory
(``sqlite:///~/runs/x.db``, ``journal:~/runs/x.journal``), as in a shell. Every problem is a
:class:`StorageError` whose message names the URL with its password masked (:func:`mask_url`)
and says what to do: bad input exits 2, a server unreachable for the retry window
(:class:`StorageUnavailable`) exits 1.
Optuna and SQLAlchemy are imported only when a storage is opened.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from loran_search.storage.errors import (
    JournalCorruptError,
    StorageError,
    StorageMissing,
    StorageUnavailable,
    StorageURLError,
)
from loran_search.storage.files import check_file
from loran_search.storage.journal import check_journal, open_journal
from loran_search.storage.rdb import RETRY_WINDOW_S, close_storage, open_rdb
from loran_search.storage.urls import (
    EXAMPLES,
    RDB_SCHEMES,
    StorageURL,
    default_artifact_dir,
    mask_url,
    parse_storage_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from optuna.storages import BaseStorage

__all__ = [
    "EXAMPLES",
    "RDB_SCHEMES",
    "RETRY_WINDOW_S",
    "JournalCorruptError",
    "StorageError",
    "StorageMissing",
    "StorageURL",
    "StorageURLError",
    "StorageUnavailable",
    "check_journal",
    "close_storage",
    "default_artifact_dir",
    "mask_url",
    "open_storage",
    "parse_storage_url",
]


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    stale_callback: Callable[..., None] | None = None,
    create: bool = True,
    writable: bool = True,
    retry_window: float = RETRY_WINDOW_S,
    log: Callable[[str], None] | None = None,
) -> BaseStorage:
    """Open the storage behind ``url``, or say in one :class:`StorageError` why it cannot be.

    Args:
        url: See :func:`parse_storage_url` (a leading ``~`` of a file path is expanded).
        heartbeat_interval: Seconds between heartbeats on RDB storages (``None``: none).
        grace_period: Seconds without a heartbeat before a trial is stale (default
            ``2 × heartbeat_interval``).
        stale_callback: Called by Optuna for each trial it fails as stale.
        create: Create a missing SQLite/journal file and its parent directories; with
            ``False`` a missing file is an error (a report never creates an empty study).
        writable: The caller will write: refuse a read-only file or folder up front instead of
            failing at the first write. With ``False`` a read-only storage opens for reading.
        retry_window: Seconds to keep retrying a server that cannot be reached (down,
            restarting, refusing connections) before giving up with :class:`StorageUnavailable`.
        log: Receives one line per thing done on the user's behalf (a repaired journal, a
            server being waited for); default: printed to stderr.

    Returns:
        An Optuna storage: ``RDBStorage`` or ``JournalStorage``.

    Raises:
        StorageURLError: The URL cannot work (exit 2).
        StorageMissing: No such SQLite/journal file and ``create`` is false (exit 2).
        JournalCorruptError: A journal broken before its last line (exit 2).
        StorageUnavailable: The server stayed unreachable for ``retry_window`` s (exit 1).
        StorageError: Anything else that stops the storage from opening: not a database,
            read-only, unknown role or database, missing driver (exit 2; 1 for failures that
            are not the input's fault, such as a database locked for over a minute).
    """
    say = log or _stderr
    parsed = parse_storage_url(url)
    if parsed.path is not None:
        check_file(parsed, create=create, writable=writable)
    if parsed.kind == "journal":
        return open_journal(parsed, log=say)
    return open_rdb(
        parsed,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        stale_callback=stale_callback,
        retry_window=retry_window,
        log=say,
    )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
