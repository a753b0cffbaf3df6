"""Storage URLs: accepted forms, refusals with the fix, parent directories created on open."""

from __future__ import annotations

from pathlib import Path

import pytest

from loran_search.search.storage import (
    StorageURLError,
    _with_driver,
    default_artifact_dir,
    open_storage,
    parse_storage_url,
)


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
