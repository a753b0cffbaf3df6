"""Optuna storages from a URL: SQLite (default), a journal file, PostgreSQL or MySQL.

=====================================  ===========================================================
``sqlite:///runs/loran-search.db``     one machine; RDB storage (heartbeats work); parent
                                       directory created on first use
``journal:runs/study.journal``         several local processes (or machines on a shared file
                                       system); Optuna's ``JournalFileBackend``
``postgresql://user@host:5432/db``     several machines: every worker points at one server
``mysql://user:pw@host/db``            idem (needs a MySQL driver such as PyMySQL installed)
=====================================  ===========================================================

RDB storages (SQLite, PostgreSQL, MySQL) are opened with ``heartbeat_interval``/``grace_period``:
each running trial's worker records a heartbeat and a trial without one for ``grace_period``
seconds is stale. The journal has no heartbeat table, so :mod:`loran_search.search.study` keeps
its own heartbeat in a trial system attribute (same rule, same grace period).

:func:`parse_storage_url` imports nothing heavy (``validate`` uses it).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable

    from optuna.storages import BaseStorage

RDB_SCHEMES = ("postgresql", "postgres", "mysql")
EXAMPLES = (
    "sqlite:///runs/loran-search.db, journal:runs/study.journal, "
    "postgresql://user@127.0.0.1:5432/optuna, mysql://user:password@host/optuna"
)


class StorageURLError(ValueError):
    """A storage URL that cannot work; the message shows the accepted forms."""


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL.

    Attributes:
        kind: ``sqlite`` | ``journal`` | ``rdb`` (PostgreSQL/MySQL).
        url: The URL as given (``postgres://`` normalised to ``postgresql://``).
        path: The database or journal file (``None`` for servers).
    """

    kind: str
    url: str
    path: Path | None = None

    @property
    def heartbeats(self) -> bool:
        """Whether Optuna's RDB heartbeat table is available (SQLite, PostgreSQL, MySQL)."""
        return self.kind in ("sqlite", "rdb")


def parse_storage_url(url: str) -> StorageURL:
    """Check and classify a storage URL.

    Raises:
        StorageURLError: Unknown scheme, missing path, host or database name.
    """
    if not isinstance(url, str) or not url.strip():
        raise StorageURLError(f"The storage URL is empty. Examples: {EXAMPLES}.")
    url = url.strip()
    if url.startswith("journal:"):
        path = url[len("journal:") :].removeprefix("//")
        if not path:
            raise StorageURLError(
                f"'{url}' names no journal file; write journal:PATH, e.g. journal:runs/s.journal."
            )
        return StorageURL("journal", url, Path(path))
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise StorageURLError(
                f"'{url}' is not a SQLite URL Optuna can open: write sqlite:///RELATIVE/PATH.db "
                "(three slashes) or sqlite:////ABSOLUTE/PATH.db (four)."
            )
        rest = url[len("sqlite:///") :]
        return StorageURL("sqlite", url, None if rest == ":memory:" else Path(rest))
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme in RDB_SCHEMES:
        if not parts.hostname:
            raise StorageURLError(
                f"'{url}' has no host; write {scheme}://USER@HOST:PORT/DATABASE, e.g. "
                "postgresql://postgres@127.0.0.1:5432/optuna."
            )
        if not parts.path.strip("/"):
            raise StorageURLError(
                f"'{url}' names no database; add it after the host: {scheme}://…@"
                f"{parts.hostname}/DATABASE."
            )
        try:
            _ = parts.port
        except ValueError:
            raise StorageURLError(f"'{url}' has a malformed port.") from None
        if scheme == "postgres":
            url = "postgresql" + url[len("postgres") :]
        return StorageURL("rdb", url)
    raise StorageURLError(
        f"Unsupported storage URL '{url}'. Use one of: {EXAMPLES}. (A bare file name is not a "
        "URL: write sqlite:///NAME.db or journal:NAME.journal.)"
    )


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    stale_callback: Callable[..., None] | None = None,
) -> BaseStorage:
    """Open (creating files and parent directories as needed) the storage behind ``url``.

    Args:
        url: See :func:`parse_storage_url`.
        heartbeat_interval: Seconds between heartbeats on RDB storages (``None``: none).
        grace_period: Seconds without a heartbeat before a trial is stale (default
            ``2 × heartbeat_interval``).
        stale_callback: Called by Optuna for each trial it fails as stale.
    """
    import optuna

    parsed = parse_storage_url(url)
    if parsed.kind == "journal":
        assert parsed.path is not None
        parsed.path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(parsed.path)))
    engine_kwargs: dict[str, Any] = {}
    if parsed.kind == "sqlite":
        if parsed.path is not None:
            parsed.path.parent.mkdir(parents=True, exist_ok=True)
        # Several local processes may share one SQLite file: wait for the lock, don't fail.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    url = _with_driver(parsed.url)
    grace = grace_period
    if heartbeat_interval is not None and grace is None:
        grace = 2 * heartbeat_interval
    import sqlalchemy.exc

    for attempt in range(6):
        try:
            with warnings.catch_warnings():  # heartbeat_interval: "experimental" (Optuna 2.9)
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace if heartbeat_interval is not None else None,
                    heartbeat_stale_trial_callback=stale_callback,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            # Workers starting together on an empty database race to create Optuna's schema
            # (e.g. "type studydirection already exists"); the loser finds it made next time.
            if attempt == 5:
                raise
            last = err
            time.sleep(0.3 * (attempt + 1))
    raise AssertionError(last)  # pragma: no cover - the loop returns or raises


def _with_driver(url: str) -> str:
    """Name an installed driver for a bare ``postgresql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; the project installs psycopg2
    (``psycopg2-binary``), so a bare URL would fail with "Failed to import DB access module".
    """
    import importlib.util

    if (
        url.startswith("postgresql://")
        and importlib.util.find_spec("psycopg") is None
        and importlib.util.find_spec("psycopg2") is not None
    ):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def default_artifact_dir(url: str) -> Path:
    """Where artifacts go when ``study.artifacts`` is unset: ``artifacts/`` next to the file.

    For a server URL that is ``runs/artifacts`` in the working directory; several machines
    must then set ``study.artifacts`` to a shared directory.
    """
    parsed = parse_storage_url(url)
    if parsed.path is not None:
        return parsed.path.parent / "artifacts"
    return Path("runs") / "artifacts"
