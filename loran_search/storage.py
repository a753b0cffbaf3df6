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
(``sqlite:///~/runs/x.db``, ``journal:~/runs/x.journal``), as in a shell.

RDB storages (SQLite, PostgreSQL, MySQL) are opened with ``heartbeat_interval``/``grace_period``:
each running trial's worker records a heartbeat and a trial without one for ``grace_period``
seconds is stale. The journal has no heartbeat table, so :mod:`loran_search.search.study` keeps
its own heartbeat in a trial system attribute (same rule, same grace period).

Errors: every problem with a storage is a :class:`StorageError` (a
:class:`~loran_search.errors.LoranSearchError`) whose message names the URL with its password
masked (:func:`mask_url`) and says what to do. Bad input (a malformed URL, a file that is not a
database, a read-only folder, an unknown role or database, a corrupt journal) exits 2; a server
that cannot be reached within the retry window (:class:`StorageUnavailable`) exits 1.

Journal files: a process that stops mid-write (killed, disk full) leaves a cut last line. Optuna
skips it on read but appends the next record onto it, after which the file cannot be read at all.
:func:`open_storage` therefore checks the last line before anything is written and repairs it
(after copying the file to ``NAME.bak-YYYYmmdd-HHMMSS``), and every later append checks again
under the journal's lock; a journal already broken in the middle is refused with the line number.

:func:`parse_storage_url` and :func:`mask_url` import nothing heavy (``validate`` uses them).
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import shutil
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from loran_search.errors import EXIT_FAILURE, LoranSearchError

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

RDB_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb")
EXAMPLES = (
    "sqlite:///runs/loran-search.db, journal:runs/study.journal, "
    "postgresql://user@127.0.0.1:5432/optuna, mysql://user:password@host/optuna"
)
RETRY_WINDOW_S = 30.0
"""How long :func:`open_storage` keeps retrying a server it cannot reach (seconds)."""

_SQLITE_HEADER = b"SQLite format 3\x00"
_RECORD_START = b'{"op_code":'  # how every record Optuna's journal writes begins
_SCHEMA_RACES = 8  # attempts when workers race to create Optuna's tables


class StorageError(LoranSearchError):
    """A storage that cannot be opened or used; exit 2 (bad input) unless it says otherwise."""


class StorageURLError(StorageError, ValueError):
    """A storage URL that cannot work; the message shows the accepted forms (exit 2)."""


class StorageMissing(StorageError):
    """No SQLite or journal file at the path, and the caller asked not to create one (exit 2)."""


class StorageUnavailable(StorageError):
    """The storage's server could not be reached within the retry window (exit 1)."""

    exit_code = EXIT_FAILURE


class JournalCorruptError(StorageError):
    """A journal file with a broken record before its last line (exit 2)."""


# --------------------------------------------------------------------------- URLs

_USERINFO_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][\w+.-]*://[^:/@]*:)(?P<password>.*)@")
_QUERY_PASSWORD = re.compile(r"(?i)(?P<key>[?&](?:password|passwd|pwd)=)[^&#]*")


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for every message that shows a URL.

    ``postgresql://user:secret@host/db`` becomes ``postgresql://user:***@host/db``; a
    ``password=`` query parameter is masked too. Everything up to the last ``@`` counts as the
    password, so one containing an unescaped ``@`` is not half shown. A URL without a password
    comes back unchanged.

    Args:
        url: Any storage URL (or a string that failed to parse as one).

    Returns:
        The URL safe to print.
    """
    if not isinstance(url, str):
        return repr(type(url).__name__)
    masked = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}***@", url, count=1)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['key']}***", masked)


@dataclass(frozen=True)
class StorageURL:
    """A parsed storage URL.

    Attributes:
        kind: ``sqlite`` | ``journal`` | ``rdb`` (PostgreSQL/MySQL).
        url: The URL to open: ``postgres://`` normalised to ``postgresql://`` and a leading
            ``~`` of a SQLite path expanded.
        path: The database or journal file, ``~`` expanded (``None`` for servers and
            ``:memory:``).
    """

    kind: str
    url: str
    path: Path | None = None

    @property
    def heartbeats(self) -> bool:
        """Whether Optuna's RDB heartbeat table is available (SQLite, PostgreSQL, MySQL)."""
        return self.kind in ("sqlite", "rdb")

    @property
    def shown(self) -> str:
        """The URL with its password masked."""
        return mask_url(self.url)


def parse_storage_url(url: str) -> StorageURL:
    """Check and classify a storage URL; a leading ``~`` of a file path is expanded.

    Args:
        url: ``sqlite:///PATH``, ``journal:PATH``, ``postgresql://…`` or ``mysql://…``;
            ``sqlite:///~/x.db`` and ``journal:~/x.journal`` name files in the home directory.

    Returns:
        The parsed URL.

    Raises:
        StorageURLError: Unknown scheme, missing path, host or database name (exit 2).
    """
    if not isinstance(url, str) or not url.strip():
        raise StorageURLError(f"The storage URL is empty. Examples: {EXAMPLES}.")
    url = url.strip()
    shown = mask_url(url)
    if url.startswith("journal:"):
        path = url[len("journal:") :].removeprefix("//")
        if not path:
            raise StorageURLError(
                f"'{shown}' names no journal file; write journal:PATH, e.g. journal:runs/s.journal."
            )
        return StorageURL("journal", url, Path(path).expanduser())
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise StorageURLError(
                f"'{shown}' is not a SQLite URL Optuna can open: write sqlite:///RELATIVE/PATH.db "
                "(three slashes) or sqlite:////ABSOLUTE/PATH.db (four)."
            )
        rest = url[len("sqlite:///") :]
        name, sep, query = rest.partition("?")
        if name == ":memory:":
            return StorageURL("sqlite", url, None)
        if name.startswith("~"):
            name = str(Path(name).expanduser())
            url = f"sqlite:///{name}{sep}{query}"
        return StorageURL("sqlite", url, Path(name))
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme in RDB_SCHEMES:
        if not parts.hostname:
            raise StorageURLError(
                f"'{shown}' has no host; write {scheme}://USER@HOST:PORT/DATABASE, e.g. "
                "postgresql://postgres@127.0.0.1:5432/optuna."
            )
        if not parts.path.strip("/"):
            raise StorageURLError(
                f"'{shown}' names no database; add it after the host: {scheme}://…@"
                f"{parts.hostname}/DATABASE."
            )
        try:
            _ = parts.port
        except ValueError:
            raise StorageURLError(f"'{shown}' has a malformed port.") from None
        if scheme == "postgres":
            url = "postgresql" + url[len("postgres") :]
        return StorageURL("rdb", url)
    raise StorageURLError(
        f"Unsupported storage URL '{shown}'. Use one of: {EXAMPLES}. (A bare file name is not a "
        "URL: write sqlite:///NAME.db or journal:NAME.journal.)"
    )


def default_artifact_dir(url: str) -> Path:
    """Where artifacts go when ``study.artifacts`` is unset: ``artifacts/`` next to the file.

    For a server URL that is ``runs/artifacts`` in the working directory; several machines
    must then set ``study.artifacts`` to a shared directory.

    Raises:
        StorageURLError: The URL cannot work.
    """
    parsed = parse_storage_url(url)
    if parsed.path is not None:
        return parsed.path.parent / "artifacts"
    return Path("runs") / "artifacts"


def _with_driver(url: str) -> str:
    """Name an installed driver for a bare ``postgresql://`` or ``mysql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3 and ``mysql://`` to mysqlclient
    (``MySQLdb``); the project installs psycopg2 (``psycopg2-binary``) and PyMySQL, so a bare URL
    would fail with "Failed to import DB access module". A URL that names a driver
    (``postgresql+psycopg2://``) is returned as it is.
    """
    import importlib.util

    def have(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    if url.startswith("postgresql://") and not have("psycopg") and have("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    for scheme in ("mysql", "mariadb"):
        if url.startswith(f"{scheme}://") and not have("MySQLdb") and have("pymysql"):
            return f"{scheme}+pymysql://" + url[len(f"{scheme}://") :]
    return url


# --------------------------------------------------------------------------- opening


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
    if parsed.kind == "journal":
        assert parsed.path is not None
        return _open_journal(parsed, create=create, writable=writable, log=say)
    if parsed.path is not None:
        _check_sqlite_file(parsed, create=create, writable=writable)
    return _open_rdb(
        parsed,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        stale_callback=stale_callback,
        retry_window=retry_window,
        log=say,
    )


def close_storage(storage: BaseStorage) -> None:
    """Close the server connections ``storage`` holds now (idempotent; it stays usable).

    An ``RDBStorage`` keeps a pool of open connections; they are also closed when the storage
    is garbage collected, but a caller that knows it is done (a poller, a short read) closes
    them at once. A journal storage holds no connection: nothing to do.
    """
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is not None:
        engine.dispose()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _check_file(parsed: StorageURL, *, what: str, create: bool, writable: bool) -> None:
    """Refuse a folder, a missing file (``create=False``) or a read-only place, up front."""
    path = parsed.path
    assert path is not None
    if path.is_dir():
        example = path / ("s.journal" if what == "journal" else "study.db")
        raise StorageError(
            f"The {what} {path} (storage {parsed.shown}) is a folder, not a file.",
            fix=f"Name a file inside it, e.g. {example}.",
        )
    if not path.exists():
        if not create:
            raise StorageMissing(
                f"No {'study database' if what != 'journal' else 'journal file'} at {path} "
                f"(storage {parsed.shown}).",
                fix="Check the path (relative paths are taken from the current directory), or "
                "run the study first: `loran-search run FILE`.",
            )
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise StorageError(
                f"Cannot create the {what} {path} (storage {parsed.shown}): {folder} is a file, "
                "not a folder.",
                fix="Point the storage at a path inside a folder.",
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StorageError(
                f"Cannot create the {what} {path} (storage {parsed.shown}): the folder {folder} "
                "is read-only.",
                fix=f"Make it writable (chmod u+w {folder}) or point the storage at a writable "
                "folder.",
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(
                f"Cannot create the folder {path.parent} for the storage {parsed.shown}: "
                f"{err.strerror or err}.",
                fix="Point the storage at a writable folder.",
            ) from None
        return
    if not os.access(path, os.R_OK):
        raise StorageError(
            f"The {what} {path} (storage {parsed.shown}) is not readable.",
            fix=f"Give yourself read access (chmod u+r {path}) or copy it somewhere you can read.",
        )
    if writable:
        if not os.access(path, os.W_OK):
            raise StorageError(
                f"The {what} {path} (storage {parsed.shown}) is read-only; the study writes to it.",
                fix=f"Make it writable (chmod u+w {path}) or copy it to a writable folder and "
                "point the storage there.",
            )
        if not os.access(path.parent, os.W_OK | os.X_OK):
            needs = "its lock file" if what == "journal" else "its rollback journal"
            raise StorageError(
                f"The folder {path.parent} of the {what} {path} (storage {parsed.shown}) is "
                f"read-only; writing to the {what} needs {needs} there.",
                fix=f"Make the folder writable (chmod u+w {path.parent}) or move the file to a "
                "writable folder and point the storage there.",
            )


def _check_sqlite_file(parsed: StorageURL, *, create: bool, writable: bool) -> None:
    _check_file(parsed, what="SQLite database", create=create, writable=writable)
    path = parsed.path
    assert path is not None
    if not path.exists():
        return
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if head and head != _SQLITE_HEADER:
        hint = (
            f" It looks like an Optuna journal: use journal:{path}."
            if head.startswith(b"{")
            else ""
        )
        raise StorageError(
            f"{path} is not a SQLite database (storage {parsed.shown}).{hint}",
            fix="Point the storage at the study's .db file, or move this file away to start a new "
            "study at that path.",
        )


def _open_rdb(
    parsed: StorageURL,
    *,
    heartbeat_interval: int | None,
    grace_period: int | None,
    stale_callback: Callable[..., None] | None,
    retry_window: float,
    log: Callable[[str], None],
) -> BaseStorage:
    import warnings

    import optuna
    import sqlalchemy.exc

    engine_kwargs: dict[str, Any] = {}
    url = _with_driver(parsed.url)
    if parsed.kind == "sqlite":
        # Several local processes may share one SQLite file: wait for the lock, don't fail.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
        if "+psycopg2" in url.split("://", 1)[0] or "+pymysql" in url.split("://", 1)[0]:
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
    grace = grace_period
    if heartbeat_interval is not None and grace is None:
        grace = 2 * heartbeat_interval
    start = time.monotonic()
    races = tries = 0
    while True:
        try:
            with warnings.catch_warnings():  # heartbeat_interval: "experimental" (Optuna 2.9)
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace if heartbeat_interval is not None else None,
                    heartbeat_stale_trial_callback=stale_callback,
                )
            # SQLAlchemy's engine sits in reference cycles, so its pooled connections outlive
            # the storage until a cyclic garbage collection: a process that opens storages
            # repeatedly (a poller, a report per study, a test suite) piles up server
            # connections ("too many clients"). Close them when the storage itself goes.
            weakref.finalize(storage, storage.engine.dispose)
            return storage
        except sqlalchemy.exc.DBAPIError as err:
            message = _db_message(err)
            if _is_schema_race(message) and races < _SCHEMA_RACES:
                # Workers starting together on an empty database race to create Optuna's
                # schema ("table studies already exists", "type studydirection already
                # exists", a duplicate version row); the loser finds it made next time.
                races += 1
                time.sleep(random.uniform(0.05, 0.2) * races)
                continue
            problem = _classify(parsed, message)
            elapsed = time.monotonic() - start
            if problem is None and elapsed < retry_window:
                if not tries:
                    log(
                        f"Cannot reach {_server(parsed)} (storage {parsed.shown}): {message}. "
                        f"Retrying for up to {retry_window:g} s (Ctrl-C stops)."
                    )
                tries += 1
                time.sleep(max(0.05, min(2.0, 0.25 * 2 ** min(tries, 3), retry_window - elapsed)))
                continue
            if problem is None:
                problem = StorageUnavailable(
                    f"Cannot reach {_server(parsed)} (storage {parsed.shown}); tried for "
                    f"{elapsed:.0f} s: {message}.",
                    fix="Check the host and port in the URL (is a server listening there?), or "
                    "start the server / wait until it is back, then re-run.",
                )
            raise problem from None
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as err:
            raise StorageURLError(
                f"SQLAlchemy cannot use the storage URL '{parsed.shown}': {err}.",
                fix=f"Use one of: {EXAMPLES}.",
            ) from None
        except ImportError:
            raise StorageError(
                f"No database driver for {parsed.shown} is installed.",
                fix=_driver_fix(parsed.url),
            ) from None
        except RuntimeError as err:
            if "optuna storage upgrade" not in str(err):
                raise
            raise StorageError(
                f"The storage {parsed.shown} was written by another Optuna version: {err}",
                fix="Back it up, then run `optuna storage upgrade --storage URL` with this URL, "
                f"or use Optuna {_stored_version(str(err))}.",
            ) from None


def _stored_version(text: str) -> str:
    found = re.search(r"set up by optuna ([\w.]+)", text)
    return found.group(1) if found else "the version that created it"


def _driver_fix(url: str) -> str:
    if url.startswith(("mysql", "mariadb")):
        return "Install one: pip install PyMySQL (then mysql:// uses it)."
    if url.startswith("postgresql"):
        return "Install one: pip install psycopg2-binary (or pip install 'loran-search[postgres]')."
    return "Install the driver the URL names."


def _server(parsed: StorageURL) -> str:
    parts = urlsplit(parsed.url)
    mysql = parts.scheme.startswith(("mysql", "mariadb"))
    name = "the MySQL server" if mysql else "the PostgreSQL server"
    try:
        port = parts.port
    except ValueError:  # pragma: no cover - parse_storage_url refused it
        port = None
    return f"{name} at {parts.hostname}:{port or (3306 if mysql else 5432)}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _db_message(err: Exception) -> str:
    """The driver's own message on one line (without SQLAlchemy's SQL and help link)."""
    orig = getattr(err, "orig", None) or err
    args = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int):  # PyMySQL / mysqlclient: (code, text)
        text = f"{args[1]} (MySQL error {args[0]})"
    else:
        text = str(orig)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(orig).__name__)
    # psycopg2 prefixes `connection to server at "HOST", port N failed:` (the message says where)
    first = re.sub(r'^connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed: ', "", first)
    return re.sub(r"\s+", " ", first).rstrip(". ")


def _is_schema_race(message: str) -> bool:
    low = message.lower()
    return any(
        s in low
        for s in (
            "already exists",
            "duplicate key",
            "unique constraint",
            "duplicate entry",
            "mysql error 1050",  # table already exists
        )
    )


# Messages of a server that is down, restarting or overloaded: worth waiting for.
_TRANSIENT = (
    "connection refused",
    "could not connect",
    "can't connect",
    "timeout expired",
    "timed out",
    "server closed the connection",
    "lost connection",
    "has gone away",
    "connection reset",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "too many clients",
    "too many connections",
    "no route to host",
    "network is unreachable",
    "terminating connection",
)


def _classify(parsed: StorageURL, message: str) -> StorageError | None:
    """The error for a database's refusal, or ``None`` when it is worth retrying."""
    low = message.lower()
    parts = urlsplit(parsed.url)
    user = parts.username or "(none)"
    database = parts.path.strip("/").split("?")[0]
    where = f"(storage {parsed.shown})"
    if parsed.kind == "sqlite":
        path = parsed.path
        if "file is not a database" in low or "malformed" in low:
            return StorageError(
                f"{path} is not a SQLite database {where}: {message}.",
                fix="Point the storage at the study's .db file, or move this file away to start "
                "a new study at that path.",
            )
        if "readonly" in low or "read-only" in low or "unable to open" in low:
            return StorageError(
                f"SQLite cannot write {path} {where}: {message}.",
                fix="Make the file and its folder writable, or point the storage at a writable "
                "folder.",
            )
        if "locked" in low:
            return StorageError(
                f"The SQLite database {path} stayed locked for 60 s {where}: {message}.",
                fix="Another process holds a long write lock on it (an open `sqlite3` shell?); "
                "close it and re-run. For many workers use a journal or PostgreSQL.",
                exit_code=EXIT_FAILURE,
            )
        return StorageError(
            f"Cannot open the SQLite database {path} {where}: {message}.",
            fix="Check the file, or move it away to start a new study at that path.",
            exit_code=EXIT_FAILURE,
        )
    if re.search(r'role "[^"]*" does not exist', low):
        return StorageError(
            f"{_cap(_server(parsed))} has no role {user!r} {where}: {message}.",
            fix=f"Put an existing user in the URL (USER@HOST), or create it: createuser -h "
            f"{parts.hostname} -p {parts.port or 5432} -U postgres {user}.",
        )
    if re.search(r'database "[^"]*" does not exist', low) or "mysql error 1049" in low:
        create = (
            f"createdb -h {parts.hostname} -p {parts.port or 5432} -U {user} {database}"
            if parts.scheme.startswith("postgresql")
            else f"mysql -h {parts.hostname} -u {user} -e 'CREATE DATABASE {database}'"
        )
        return StorageError(
            f"{_cap(_server(parsed))} has no database {database!r} {where}: {message}.",
            fix=f"Create it ({create}) or fix the database name in the URL.",
        )
    if any(
        s in low
        for s in (
            "password authentication failed",
            "no password supplied",
            "access denied",
            "authentication failed",
            "pg_hba.conf",
        )
    ):
        return StorageError(
            f"{_cap(_server(parsed))} refused user {user!r} {where}: {message}.",
            fix="Check the user and password in the URL (and that the server lets this user in "
            "from this machine).",
        )
    if any(
        s in low
        for s in ("could not translate host name", "name or service not known", "unknown mysql")
    ):
        return StorageError(
            f"Unknown host {parts.hostname!r} {where}: {message}.",
            fix="Check the host name in the URL.",
        )
    if "permission denied" in low:
        return StorageError(
            f"User {user!r} may not create Optuna's tables in {database!r} {where}: {message}.",
            fix="Grant it the right (e.g. GRANT CREATE ON SCHEMA public TO that user) or use a "
            "database it owns.",
        )
    if any(s in low for s in _TRANSIENT):
        return None
    return StorageError(
        f"Cannot open the storage {parsed.shown}: {message}.",
        fix="Check the URL and the server's log.",
        exit_code=EXIT_FAILURE,
    )


# --------------------------------------------------------------------------- journals


def _open_journal(
    parsed: StorageURL, *, create: bool, writable: bool, log: Callable[[str], None]
) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = parsed.path
    assert path is not None
    _check_file(parsed, what="journal", create=create, writable=writable)
    if path.exists():
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
        if head == _SQLITE_HEADER:
            raise StorageError(
                f"{path} is a SQLite database, not a journal (storage {parsed.shown}).",
                fix=f"Use sqlite:///{path}.",
            )
    can_repair = os.access(path.parent, os.W_OK | os.X_OK) and (
        not path.exists() or os.access(path, os.W_OK)
    )
    for note in check_journal(path, repair=can_repair):
        log(note)
    try:
        backend = JournalFileBackend(str(path), lock_obj=_tail_checking_lock(path, log))
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
    if not path.is_file() or _tail_ok(path):
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
        note = _repair_tail_locked(path, parsed_shown=f"journal:{path}")
    finally:
        lock.release()
    return [note] if note else []


def _tail_ok(path: Path) -> bool:
    """Whether the journal is empty or ends with a whole record and its newline."""
    size = path.stat().st_size
    if size == 0:
        return True
    with path.open("rb") as f:
        _, line = _last_line(f, size)
    return line.endswith(b"\n") and _is_record(line)


def _last_line(f: Any, size: int) -> tuple[int, bytes]:
    """``(offset, bytes)`` of the file's last line, its newline (if any) included."""
    block = 1 << 16
    start = size
    buf = b""
    while start > 0:
        step = min(block, start)
        start -= step
        f.seek(start)
        buf = f.read(step) + buf
        cut = buf.rfind(b"\n", 0, len(buf) - 1)
        if cut != -1:
            return start + cut + 1, buf[cut + 1 :]
    return 0, buf


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _repair_tail_locked(path: Path, *, parsed_shown: str) -> str | None:
    """Mend a cut last line; the caller holds the journal's lock. Returns the note, if any."""
    size = path.stat().st_size
    if size == 0:
        return None
    with path.open("rb") as f:
        offset, line = _last_line(f, size)
    if line.endswith(b"\n") and _is_record(line):
        return None
    _raise_if_corrupt(path, parsed_shown)  # a broken line before this one: mending won't do
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
            if not (line.endswith(b"\n") and _is_record(line)):
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
        """Optuna's journal lock that, once held, mends a cut last line before the append."""

        def __init__(self, path: Path, log: Callable[[str], None]) -> None:
            super().__init__(str(path))
            self._path = path
            self._log = log

        def acquire(self) -> bool:
            acquired = super().acquire()
            try:
                if _last_byte(self._path) not in (b"", b"\n"):
                    note = _repair_tail_locked(self._path, parsed_shown=f"journal:{self._path}")
                    if note:
                        self._log(note)
            except BaseException:
                self.release()
                raise
            return acquired

    return TailCheckingLock


def _tail_checking_lock(path: Path, log: Callable[[str], None]) -> Any:
    """The lock :func:`open_storage` gives a journal: each append first mends a cut last line.

    A worker that keeps a journal open would otherwise append onto the cut line another worker
    left when it was killed mid-write.
    """
    return _tail_checking_lock_class()(path, log)


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return b""
        f.seek(-1, os.SEEK_END)
        return f.read(1)
