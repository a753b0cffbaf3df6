"""Relational storages (SQLite, PostgreSQL, MySQL): opening, retries, refusals, closing.

A server that cannot be reached is retried; the driver's refusals become one
:class:`StorageError` with the fix. RDB storages are opened with ``heartbeat_interval`` and
``grace_period``: each running trial's worker records a heartbeat and a trial without one for
``grace_period`` seconds is stale.
"""

from __future__ import annotations

import random
import re
import time
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from loran_search.errors import EXIT_BAD_INPUT, EXIT_FAILURE
from loran_search.storage.errors import StorageError, StorageUnavailable, StorageURLError
from loran_search.storage.files import NOT_SQLITE_FIX
from loran_search.storage.urls import EXAMPLES

if TYPE_CHECKING:
    from collections.abc import Callable

    from optuna.storages import BaseStorage

    from loran_search.storage.urls import StorageURL

RETRY_WINDOW_S = 30.0
"""How long :func:`open_storage` keeps retrying a server it cannot reach (seconds)."""

# Workers starting together on an empty database race to create Optuna's schema ("table
# studies already exists", a duplicate version row); the loser finds it made next time.
_SCHEMA_RACES = 8  # attempts
_SCHEMA_RACE = re.compile(
    "already exists|duplicate key|unique constraint|duplicate entry|mysql error 1050"
)
# Messages of a server that is down, restarting or overloaded: worth waiting for.
_TRANSIENT = re.compile(
    "connection refused|could not connect|can't connect|timeout expired|timed out|"
    "server closed the connection|lost connection|has gone away|connection reset|"
    "the database system is (?:starting up|shutting down|in recovery mode)|"
    "too many (?:clients|connections)|no route to host|network is unreachable|"
    "terminating connection"
)
# A refusal that needs its own fix: (storage kind, what the driver says, the problem, the fix,
# exit code), the first match wins; the ``{fields}`` are :func:`_fields`'.
_REFUSALS = (
    ("sqlite", "file is not a database|malformed", "{path} is not a SQLite database",
     NOT_SQLITE_FIX, EXIT_BAD_INPUT),
    ("sqlite", "readonly|read-only|unable to open", "SQLite cannot write {path}",
     "Make the file and its folder writable, or point the storage at a writable folder.",
     EXIT_BAD_INPUT),
    ("sqlite", "locked", "The SQLite database {path} stayed locked for 60 s",
     "Another process holds a long write lock on it (an open `sqlite3` shell?); close it and "
     "re-run. For many workers use a journal or PostgreSQL.", EXIT_FAILURE),
    ("rdb", 'role "[^"]*" does not exist', "{Server} has no role {user!r}",
     "Put an existing user in the URL (USER@HOST), or create it: createuser -h {host} -p "
     "{port} -U postgres {user}.", EXIT_BAD_INPUT),
    ("rdb", 'database "[^"]*" does not exist|mysql error 1049',
     "{Server} has no database {database!r}",
     "Create it ({create}) or fix the database name in the URL.", EXIT_BAD_INPUT),
    ("rdb", r"authentication failed|no password supplied|access denied|pg_hba\.conf",
     "{Server} refused user {user!r}",
     "Check the user and password in the URL (and that the server lets this user in from this "
     "machine).", EXIT_BAD_INPUT),
    ("rdb", "could not translate host name|name or service not known|unknown mysql",
     "Unknown host {host!r}", "Check the host name in the URL.", EXIT_BAD_INPUT),
    ("rdb", "permission denied", "User {user!r} may not create Optuna's tables in {database!r}",
     "Grant it the right (e.g. GRANT CREATE ON SCHEMA public TO that user) or use a database "
     "it owns.", EXIT_BAD_INPUT),
)  # fmt: skip


def _with_driver(url: str) -> str:
    """Name an installed driver for a bare ``postgresql://`` or ``mysql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3 and ``mysql://`` to mysqlclient
    (``MySQLdb``); the project installs psycopg2 (``psycopg2-binary``) and PyMySQL, so a bare URL
    would fail with "Failed to import DB access module". A URL that names a driver
    (``postgresql+psycopg2://``) is returned as it is.
    """
    from importlib.util import find_spec

    if url.startswith("postgresql://") and not find_spec("psycopg") and find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    for scheme in ("mysql", "mariadb"):
        if url.startswith(f"{scheme}://") and not find_spec("MySQLdb") and find_spec("pymysql"):
            return f"{scheme}+pymysql://" + url[len(f"{scheme}://") :]
    return url


def close_storage(storage: BaseStorage) -> None:
    """Close the server connections ``storage`` holds now (idempotent; it stays usable).

    An ``RDBStorage`` keeps a pool of open connections; they are also closed when the storage
    is garbage collected, but a caller that knows it is done (a poller, a short read) closes
    them at once. A journal storage holds no connection: nothing to do.
    """
    engine = getattr(getattr(storage, "_backend", storage), "engine", None)
    if engine is not None:
        engine.dispose()


def open_rdb(
    parsed: StorageURL,
    *,
    heartbeat_interval: int | None,
    grace_period: int | None,
    stale_callback: Callable[..., None] | None,
    retry_window: float,
    log: Callable[[str], None],
) -> BaseStorage:
    """Open a SQLite, PostgreSQL or MySQL storage; the arguments are :func:`open_storage`'s.

    A server that cannot be reached is retried with a growing pause (0.5, 1, 2, 2, … s) until
    ``retry_window`` s have passed; workers racing to create Optuna's tables retry at once.
    """
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
    grace = grace_period if grace_period is not None else 2 * (heartbeat_interval or 0)
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
                    grace_period=None if heartbeat_interval is None else grace,
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
            if _SCHEMA_RACE.search(message.lower()) and races < _SCHEMA_RACES:
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
    return f"{name} at {parts.hostname}:{parts.port or (3306 if mysql else 5432)}"


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


def _classify(parsed: StorageURL, message: str) -> StorageError | None:
    """The error for a database's refusal, or ``None`` when a server is worth waiting for."""
    low = message.lower()
    for kind, says, problem, fix, exit_code in _REFUSALS:
        if kind == parsed.kind and re.search(says, low):
            fields = _fields(parsed)
            return StorageError(
                f"{problem.format(**fields)} (storage {parsed.shown}): {message}.",
                fix=fix.format(**fields),
                exit_code=exit_code,
            )
    if parsed.kind == "rdb" and _TRANSIENT.search(low):
        return None
    return StorageError(
        f"Cannot open the storage {parsed.shown}: {message}.",
        fix="Check the URL, and the database file or the server's log.",
        exit_code=EXIT_FAILURE,
    )


def _fields(parsed: StorageURL) -> dict[str, Any]:
    """The names a refusal's problem and fix may use (``{path}``, ``{Server}``, ``{user}``, …)."""
    parts = urlsplit(parsed.url)
    user = parts.username or "(none)"
    database = parts.path.strip("/").split("?")[0]
    host, port = parts.hostname, parts.port or 5432
    server = _server(parsed)
    return {
        "path": parsed.path,
        "Server": server[:1].upper() + server[1:],
        "user": user,
        "database": database,
        "host": host,
        "port": port,
        "create": f"createdb -h {host} -p {port} -U {user} {database}"
        if parts.scheme.startswith("postgresql")
        else f"mysql -h {host} -u {user} -e 'CREATE DATABASE {database}'",
    }
