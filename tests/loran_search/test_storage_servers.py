"""PostgreSQL and MySQL storages that cannot be opened: one clear error, the password masked.

Against the local servers (PostgreSQL 127.0.0.1:5432, trust auth, database ``test``; MariaDB or
MySQL 127.0.0.1:3306, user root without password, database ``test``); each test skips with how
to provide one when its server is unreachable. A server outage is played by a local socket that
accepts and drops every connection (a server restarting), and a short one by a proxy to the real
server that starts listening late.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import optuna
import pytest

from loran_search.errors import EXIT_BAD_INPUT, EXIT_FAILURE, LoranSearchError
from loran_search.storage import StorageError, StorageUnavailable, open_storage
from loran_search.storage.rdb import _with_driver

PG_URL = os.environ.get("LORAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LORAN_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
SECRET = "s3cret-pw"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def postgres() -> str:
    """The test server's URL, or skip with how to provide one."""
    try:
        import psycopg2

        psycopg2.connect(PG_URL, connect_timeout=2).close()
    except Exception as err:  # pragma: no cover - depends on the machine
        pytest.skip(
            f"No PostgreSQL at {PG_URL} ({type(err).__name__}). Start one (trust auth, database "
            "`test`) on 127.0.0.1:5432, or set LORAN_TEST_POSTGRES=postgresql://USER@HOST/DB, "
            "then run: pytest tests/loran_search/test_storage_servers.py"
        )
    return PG_URL


def mysql() -> str:
    """The test MySQL/MariaDB server's URL, or skip with how to provide one."""
    parts = urlsplit(MYSQL_URL)
    try:
        import pymysql

        pymysql.connect(
            host=parts.hostname,
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            connect_timeout=2,
        ).close()
    except Exception as err:  # pragma: no cover - depends on the machine
        pytest.skip(
            f"No MySQL at {MYSQL_URL} ({type(err).__name__}). Install PyMySQL (pip install "
            "PyMySQL) and start MariaDB/MySQL on 127.0.0.1:3306 (user root, no password), or set "
            "LORAN_TEST_MYSQL=mysql://USER:PASSWORD@HOST/DB, then run: "
            "pytest tests/loran_search/test_storage_servers.py"
        )
    return MYSQL_URL


def with_parts(url: str, *, user: str | None = None, port: int | None = None, db: str = "") -> str:
    """``url`` with another user (given the test password), port or database."""
    parts = urlsplit(url)
    name = user or parts.username or ""
    auth = f"{name}:{SECRET}@" if user else (f"{name}@" if name else "")
    path = f"/{db}" if db else parts.path
    return f"{parts.scheme}://{auth}{parts.hostname}:{port or parts.port}{path}"


def refused(url: str, exit_code: int, **kw: object) -> tuple[StorageError, list[str]]:
    notes: list[str] = []
    with pytest.raises(StorageError) as caught:
        open_storage(url, heartbeat_interval=None, log=notes.append, **kw)
    err = caught.value
    assert isinstance(err, LoranSearchError) and err.exit_code == exit_code
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    for line in [str(err), *notes]:
        assert SECRET not in line  # masked everywhere it is shown
    return err, notes


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dropping_server() -> Iterator[int]:
    """A port where connections are accepted and dropped at once: a server that is restarting."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def late_proxy(target: tuple[str, int], delay: float) -> tuple[int, threading.Event]:
    """A port that starts forwarding to ``target`` after ``delay`` s (a short outage)."""
    port = closed_port()
    stop = threading.Event()

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        time.sleep(delay)
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(16)
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            upstream = socket.create_connection(target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return port, stop


# ------------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_pg_nothing_listening_is_an_outage_after_the_retry_window() -> None:
    url = with_parts(postgres(), user="postgres", port=closed_port())
    start = time.monotonic()
    err, notes = refused(url, EXIT_FAILURE, retry_window=1.0)
    assert isinstance(err, StorageUnavailable)
    assert 1.0 <= time.monotonic() - start < 15
    port = urlsplit(url).port
    assert f"Cannot reach the PostgreSQL server at 127.0.0.1:{port}" in str(err)
    assert f"postgres:***@127.0.0.1:{port}/test" in str(err)
    assert "Connection refused" in str(err) and "Check the host and port" in str(err)
    assert len(notes) == 1 and "Retrying for up to 1 s" in notes[0]


@pytest.mark.postgres
def test_pg_outage_longer_than_the_retry_window(dropping_server: int) -> None:
    url = with_parts(postgres(), user="postgres", port=dropping_server)
    err, _ = refused(url, EXIT_FAILURE, retry_window=1.5)
    assert isinstance(err, StorageUnavailable)
    assert "server closed the connection unexpectedly" in str(err)


@pytest.mark.postgres
def test_pg_outage_shorter_than_the_retry_window_is_waited_out() -> None:
    parts = urlsplit(postgres())
    port, stop = late_proxy((parts.hostname or "127.0.0.1", parts.port or 5432), delay=1.5)
    try:
        notes: list[str] = []
        storage = open_storage(
            with_parts(PG_URL, port=port), heartbeat_interval=None, log=notes.append
        )
        assert isinstance(optuna.get_all_study_names(storage), list)
        assert len(notes) == 1 and "Retrying" in notes[0]
        storage.engine.dispose()
    finally:
        stop.set()


@pytest.mark.postgres
def test_pg_unknown_role() -> None:
    err, notes = refused(with_parts(postgres(), user="nosuchrole"), EXIT_BAD_INPUT)
    assert "has no role 'nosuchrole'" in str(err)
    assert "nosuchrole:***@127.0.0.1" in str(err)
    assert "createuser" in str(err) and notes == []


@pytest.mark.postgres
def test_pg_missing_database() -> None:
    name = f"nosuchdb_{uuid.uuid4().hex[:8]}"
    err, _ = refused(with_parts(postgres(), db=name), EXIT_BAD_INPUT)
    assert f"has no database '{name}'" in str(err)
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {name}" in str(err)


def test_unknown_host() -> None:
    err, _ = refused(f"postgresql://u:{SECRET}@nosuchhost.invalid/db", EXIT_BAD_INPUT)
    assert "Unknown host 'nosuchhost.invalid'" in str(err)


# ------------------------------------------------------------------------------- MySQL


def test_mysql_nothing_listening_is_an_outage_after_the_retry_window() -> None:
    url = with_parts(mysql(), user="root", port=closed_port())
    err, notes = refused(url, EXIT_FAILURE, retry_window=1.0)
    assert isinstance(err, StorageUnavailable)
    assert "Cannot reach the MySQL server at 127.0.0.1:" in str(err)
    assert "root:***@127.0.0.1" in str(err) and len(notes) == 1


def test_mysql_outage_longer_than_the_retry_window(dropping_server: int) -> None:
    url = with_parts(mysql(), port=dropping_server)
    err, _ = refused(url, EXIT_FAILURE, retry_window=1.5)
    assert isinstance(err, StorageUnavailable) and "MySQL server" in str(err)


def test_mysql_unknown_user() -> None:
    err, _ = refused(with_parts(mysql(), user="nosuchuser"), EXIT_BAD_INPUT)
    assert "refused user 'nosuchuser'" in str(err) and "Access denied" in str(err)
    assert "nosuchuser:***@127.0.0.1" in str(err)


def test_mysql_missing_database() -> None:
    name = f"nosuchdb_{uuid.uuid4().hex[:8]}"
    err, _ = refused(with_parts(mysql(), db=name), EXIT_BAD_INPUT)
    assert f"has no database '{name}'" in str(err) and "CREATE DATABASE" in str(err)


def test_bare_mysql_url_opens_a_fresh_database() -> None:
    """``mysql://`` with PyMySQL installed (and no MySQLdb): the driver is named for SQLAlchemy."""
    import pymysql

    base = mysql()
    assert _with_driver(base).startswith(("mysql+pymysql://", "mysql+mysqldb://", "mysql://"))
    parts = urlsplit(base)
    name = f"loran_test_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
    )
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        storage = open_storage(with_parts(base, db=name), heartbeat_interval=None)
        study = optuna.create_study(study_name="s", storage=storage)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        again = optuna.load_study(
            study_name="s", storage=open_storage(with_parts(base, db=name), heartbeat_interval=60)
        )
        assert len(again.trials) == 2
        storage.engine.dispose()
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def _my_connections(url: str) -> int:
    """This process's open connections to the server behind ``url`` (by client port)."""
    import psycopg2

    with contextlib.closing(psycopg2.connect(url, connect_timeout=2)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT client_port FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND client_port IS NOT NULL"
        )
        ports = {row[0] for row in cur.fetchall()}
    mine = set()
    inodes = _my_socket_inodes()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(path) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[9] in inodes:
                    mine.add(int(cols[1].rsplit(":", 1)[1], 16))
    return len(ports & mine)


def _my_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


@pytest.mark.postgres
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="counts sockets through /proc")
def test_dropped_storages_leave_no_server_connections_behind() -> None:
    """A process that opens storages again and again (a poller, one report per study, this
    suite) must not pile up connections until the server refuses clients: SQLAlchemy's engine
    sits in reference cycles, so without the finaliser its pool stays open until a cyclic GC."""
    import gc

    from loran_search.storage import close_storage

    url = postgres()
    gc.collect()
    before = _my_connections(url)
    gc.disable()  # what a long stretch without a cyclic collection looks like
    try:
        for _ in range(8):
            storage = open_storage(url, heartbeat_interval=None)
            optuna.get_all_study_names(storage)
            del storage
        dropped = _my_connections(url) - before
        kept = open_storage(url, heartbeat_interval=None)
        optuna.get_all_study_names(kept)
        held = _my_connections(url) - before
        close_storage(kept)
        closed = _my_connections(url) - before
        assert isinstance(optuna.get_all_study_names(kept), list)  # still usable after closing
        close_storage(kept)
    finally:
        gc.enable()
    assert dropped == 0, f"{dropped} connections outlived their storages"
    assert held >= 1 and closed == 0, (held, closed)
