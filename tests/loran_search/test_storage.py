"""Storage URLs: accepted forms, refusals with the fix (password masked), ``~``, drivers."""

from __future__ import annotations

from pathlib import Path

import pytest

from loran_search.errors import EXIT_BAD_INPUT, LoranSearchError
from loran_search.storage import (
    StorageURLError,
    default_artifact_dir,
    mask_url,
    open_storage,
    parse_storage_url,
)
from loran_search.storage.rdb import _classify, _with_driver


@pytest.mark.parametrize(
    ("url", "kind", "path"),
    [
        ("sqlite:///runs/x.db", "sqlite", "runs/x.db"),
        ("sqlite:////abs/x.db", "sqlite", "/abs/x.db"),
        ("journal:runs/x.journal", "journal", "runs/x.journal"),
        ("journal:///abs/x.journal", "journal", "/abs/x.journal"),
        ("postgresql://u@h:5432/db", "rdb", None),
        ("postgresql+psycopg2://u@h/db", "rdb", None),
        ("mysql://u:p@h/db", "rdb", None),
    ],
)
def test_accepted(url: str, kind: str, path: str | None) -> None:
    parsed = parse_storage_url(url)
    assert parsed.kind == kind
    assert parsed.path == (Path(path) if path else None)


def test_postgres_alias_is_normalised() -> None:
    assert parse_storage_url("postgres://u@h/db").url == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("", "Examples"),
        ("runs/x.db", "write sqlite:///NAME.db"),
        ("sqlite://x.db", "three slashes"),
        ("journal:", "journal:PATH"),
        ("postgresql:///db", "has no host"),
        ("postgresql://h", "names no database"),
        ("postgresql://h:port/db", "malformed port"),
        ("redis://h/0", "Unsupported storage URL"),
    ],
)
def test_refused_with_the_fix(url: str, fix: str) -> None:
    with pytest.raises(StorageURLError, match=fix):
        parse_storage_url(url)


def test_open_creates_parent_dirs(tmp_path: Path) -> None:
    open_storage(f"sqlite:///{tmp_path / 'a' / 'b' / 's.db'}")
    assert (tmp_path / "a" / "b" / "s.db").is_file()
    open_storage(f"journal:{tmp_path / 'j' / 's.journal'}")
    assert (tmp_path / "j").is_dir()
    assert (
        default_artifact_dir(f"sqlite:///{tmp_path / 'a' / 's.db'}") == tmp_path / "a" / "artifacts"
    )


def test_bare_postgresql_url_names_the_installed_driver() -> None:
    import importlib.util

    url = _with_driver("postgresql://u@h/db")
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        assert url == "postgresql+psycopg2://u@h/db"
    else:
        assert url == "postgresql://u@h/db"
    assert _with_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


# ---------------------------------------------------------------- errors, masking, ~, drivers


def test_url_errors_are_loran_search_errors_and_value_errors() -> None:
    with pytest.raises(StorageURLError) as caught:
        parse_storage_url("redis://h/0")
    assert isinstance(caught.value, LoranSearchError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://user:s3cret@host/db", "postgresql://user:***@host/db"),
        ("postgresql+psycopg2://u:s3cret@h:5432/db", "postgresql+psycopg2://u:***@h:5432/db"),
        ("mysql://root:s3cret@127.0.0.1/test", "mysql://root:***@127.0.0.1/test"),
        ("mysql://:s3cret@h/db", "mysql://:***@h/db"),
        ("postgresql://u:p@s3cret@h/db", "postgresql://u:***@h/db"),  # an unescaped @
        ("postgresql://u@h/db?password=s3cret&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///runs/x.db", "sqlite:///runs/x.db"),
        ("journal:runs/x.journal", "journal:runs/x.journal"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:s3cret@/db",  # no host
        "postgresql://u:s3cret@h",  # no database
        "postgresql://u:s3cret@h:port/db",  # malformed port
        "redis://u:s3cret@h/0",  # unsupported
    ],
)
def test_url_refusals_mask_the_password(url: str) -> None:
    with pytest.raises(StorageURLError) as caught:
        parse_storage_url(url)
    assert "s3cret" not in str(caught.value)
    assert ":***@" in str(caught.value)


def test_tilde_is_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    parsed = parse_storage_url("sqlite:///~/runs/x.db")
    assert parsed.path == tmp_path / "runs" / "x.db"
    assert parsed.url == f"sqlite:///{tmp_path / 'runs' / 'x.db'}"
    assert parse_storage_url("journal:~/j/x.journal").path == tmp_path / "j" / "x.journal"
    assert default_artifact_dir("sqlite:///~/runs/x.db") == tmp_path / "runs" / "artifacts"
    open_storage("sqlite:///~/runs/x.db", heartbeat_interval=None)
    open_storage("journal:~/j/x.journal")
    assert (tmp_path / "runs" / "x.db").is_file()
    assert (tmp_path / "j" / "x.journal").is_file()
    assert not (tmp_path / "~").exists()  # before: a folder literally named "~"


def test_bare_mysql_url_names_the_installed_driver() -> None:
    import importlib.util

    have = importlib.util.find_spec
    url = _with_driver("mysql://u:p@h/db")
    if have("MySQLdb") is None and have("pymysql") is not None:
        assert url == "mysql+pymysql://u:p@h/db"
        assert _with_driver("mariadb://u@h/db") == "mariadb+pymysql://u@h/db"
    else:
        assert url == "mysql://u:p@h/db"
    assert _with_driver("mysql+mysqldb://u@h/db") == "mysql+mysqldb://u@h/db"
    assert parse_storage_url("mariadb://u@h/db").kind == "rdb"


# ---------------------------------------------------------------- a database's refusals


@pytest.mark.parametrize(
    ("url", "said", "shown", "exit_code"),
    [
        ("sqlite:///x.db", "file is not a database", "x.db is not a SQLite database", 2),
        ("sqlite:///x.db", "attempt to write a readonly database", "SQLite cannot write x.db", 2),
        ("sqlite:///x.db", "database is locked", "x.db stayed locked for 60 s", 1),
        ("sqlite:///x.db", "disk I/O error", "Cannot open the storage sqlite:///x.db", 1),
        ("sqlite:///x.db", "connection refused", "Cannot open the storage", 1),  # never waited
        (
            "postgresql://u:pw@h:5433/db",
            'FATAL: password authentication failed for user "u"',
            "PostgreSQL server at h:5433 refused user 'u' (storage postgresql://u:***@h:5433/db)",
            2,
        ),
        (
            "postgresql://u@h/db",
            'role "u" does not exist',
            "createuser -h h -p 5432 -U postgres u",
            2,
        ),
        ("postgresql://u@h/db", 'database "db" does not exist', "createdb -h h -p 5432 -U u db", 2),
        ("mysql://u@h/db", "Unknown database 'db' (MySQL error 1049)", "CREATE DATABASE db", 2),
        ("postgresql://u@h/db", "permission denied for schema public", "in 'db'", 2),
        ("mysql://u@nohost/db", "Unknown MySQL server host 'nohost'", "Unknown host 'nohost'", 2),
        ("postgresql://u@h/db", "something else", "Check the URL", 1),
    ],
)
def test_a_refusal_says_what_to_do(url: str, said: str, shown: str, exit_code: int) -> None:
    err = _classify(parse_storage_url(url), said)
    assert err is not None and shown in str(err) and said in str(err)
    assert err.exit_code == exit_code


@pytest.mark.parametrize(
    "said",
    ["Connection refused", "the database system is starting up", "too many clients already"],
)
def test_a_server_that_is_down_is_waited_for(said: str) -> None:
    assert _classify(parse_storage_url("postgresql://u@h/db"), said) is None


def test_the_url_module_imports_nothing_heavy() -> None:
    """``validate`` and the command line parse URLs: no Optuna, SQLAlchemy or torch for that."""
    import subprocess
    import sys

    code = (
        "import sys, loran_search.storage.urls; "
        "print([m for m in ('optuna', 'sqlalchemy', 'torch') if m in sys.modules])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
