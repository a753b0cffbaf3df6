"""SQLite and journal files that cannot be opened: one clear ``StorageError`` each, exit 2.

Read-only folders and files are tested for real: the tests run as root in CI, and root writes
through ``chmod 0555``, so the cases run in a child process that drops to user ``nobody``
(uid 65534) after its imports; run as another user, the child just keeps its own uid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from loran_search.errors import EXIT_BAD_INPUT, LoranSearchError
from loran_search.storage import StorageError, StorageMissing, open_storage

ROOT = Path(__file__).resolve().parents[2]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def refused(url: str, **kw: object) -> StorageError:
    """The error opening ``url`` raises; it must be one to show without a traceback (exit 2)."""
    with pytest.raises(StorageError) as caught:
        open_storage(url, heartbeat_interval=None, **kw)
    err = caught.value
    assert isinstance(err, LoranSearchError)
    assert err.exit_code == EXIT_BAD_INPUT
    assert err.__cause__ is None  # no chained driver traceback
    assert err.__context__ is None or err.__suppress_context__
    return err


def test_random_bytes_named_db(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    junk = os.urandom(4096)
    db.write_bytes(junk)
    err = refused(f"sqlite:///{db}")
    assert f"{db} is not a SQLite database (storage sqlite:///{db})" in str(err)
    assert "move this file away" in str(err)
    assert db.read_bytes() == junk  # nothing overwritten


def test_a_sqlite_header_over_garbage(tmp_path: Path) -> None:
    """Passes the header check; SQLite itself says "file is not a database"."""
    db = tmp_path / "x.db"
    data = b"SQLite format 3\x00" + os.urandom(8192)
    db.write_bytes(data)
    err = refused(f"sqlite:///{db}")
    assert "is not a SQLite database" in str(err) and str(db) in str(err)
    assert db.read_bytes() == data


def test_a_journal_given_as_sqlite_and_back(tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    optuna.create_study(study_name="s", storage=open_storage(f"journal:{journal}"))
    err = refused(f"sqlite:///{journal}")
    assert f"use journal:{journal}" in str(err)
    db = tmp_path / "s.db"
    optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{db}"))
    err = refused(f"journal:{db}")
    assert f"Use sqlite:///{db}" in str(err)


def test_a_folder_where_the_file_should_be(tmp_path: Path) -> None:
    (tmp_path / "x.db").mkdir()
    assert "is a folder, not a file" in str(refused(f"sqlite:///{tmp_path / 'x.db'}"))
    (tmp_path / "x.journal").mkdir()
    assert "is a folder, not a file" in str(refused(f"journal:{tmp_path / 'x.journal'}"))


def test_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("")
    err = refused(f"sqlite:///{tmp_path / 'runs' / 'x.db'}")
    assert "is a file, not a folder" in str(err)


def test_missing_file_is_not_created_when_create_is_false(tmp_path: Path) -> None:
    for url, text in [
        (f"sqlite:///{tmp_path / 'none.db'}", "No study database at"),
        (f"journal:{tmp_path / 'none.journal'}", "No journal file at"),
    ]:
        err = refused(url, create=False)
        assert isinstance(err, StorageMissing) and text in str(err)
    assert list(tmp_path.iterdir()) == []


def test_report_on_random_bytes_exits_2_without_traceback(tmp_path: Path, capsys) -> None:
    from loran_search.cli import main

    db = tmp_path / "x.db"
    db.write_bytes(os.urandom(1024))
    code = main(["report", "--storage", f"sqlite:///{db}", "--study", "s", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "is not a SQLite database" in err and "Traceback" not in err


# ------------------------------------------------------------------ read-only, for real

CHILD = r"""
import json, os, sys
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from loran_search.storage import StorageError, open_storage

base = sys.argv[1]
# Import everything an open needs while the interpreter's files are still readable.
warm = os.path.join(base, "warm")
optuna.create_study(study_name="w", storage=open_storage(f"sqlite:///{warm}/w.db"))
optuna.create_study(study_name="w", storage=open_storage(f"journal:{warm}/w.journal"))
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)

def attempt(url, **kw):
    try:
        storage = open_storage(url, heartbeat_interval=None, **kw)
        return {"ok": optuna.get_all_study_names(storage)}
    except StorageError as err:
        return {"error": type(err).__name__, "exit": err.exit_code, "message": str(err)}

ro, rw = os.path.join(base, "ro"), os.path.join(base, "rw")
print(json.dumps({
    "uid": os.geteuid(),
    "new_db_in_ro_folder": attempt(f"sqlite:///{ro}/new.db"),
    "new_db_under_ro_folder": attempt(f"sqlite:///{ro}/sub/new.db"),
    "db_in_ro_folder": attempt(f"sqlite:///{ro}/s.db"),
    "ro_db_file": attempt(f"sqlite:///{rw}/ro.db"),
    "ro_db_file_for_reading": attempt(f"sqlite:///{rw}/ro.db", writable=False),
    "new_journal_in_ro_folder": attempt(f"journal:{ro}/new.journal"),
    "journal_in_ro_folder": attempt(f"journal:{ro}/s.journal"),
    "ro_journal_file": attempt(f"journal:{rw}/ro.journal"),
    "ro_journal_for_reading": attempt(f"journal:{rw}/ro.journal", writable=False),
}))
"""


@pytest.fixture
def readonly_places() -> Iterator[Path]:
    """``ro/`` (mode 0555, holding a writable study database and journal), ``rw/`` with 0444 ones.

    Made under /tmp (not pytest's 0700 tmp_path) so that user ``nobody`` can reach it.
    """
    base = Path(tempfile.mkdtemp(prefix="loran-ro-", dir="/tmp"))
    base.chmod(0o755)
    try:
        (base / "warm").mkdir(mode=0o777)
        (base / "warm").chmod(0o777)
        ro, rw = base / "ro", base / "rw"
        ro.mkdir()
        rw.mkdir()
        for folder, db, journal in [(ro, "s.db", "s.journal"), (rw, "ro.db", "ro.journal")]:
            optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{folder / db}"))
            optuna.create_study(study_name="s", storage=open_storage(f"journal:{folder / journal}"))
            (folder / db).chmod(0o666 if folder == ro else 0o444)
            (folder / journal).chmod(0o666 if folder == ro else 0o444)
        rw.chmod(0o777)
        ro.chmod(0o555)
        yield base
    finally:
        for path in [base, *base.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_read_only_folders_and_files(readonly_places: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(readonly_places)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got.pop("uid") != 0  # the checks ran without root's override
    ro, rw = readonly_places / "ro", readonly_places / "rw"
    expect = {
        "new_db_in_ro_folder": f"the folder {ro} is read-only",
        "new_db_under_ro_folder": f"the folder {ro} is read-only",
        "db_in_ro_folder": f"The folder {ro} of the SQLite database",
        "ro_db_file": f"The SQLite database {rw}/ro.db (storage sqlite:///{rw}/ro.db) is read-only",
        "new_journal_in_ro_folder": f"the folder {ro} is read-only",
        "journal_in_ro_folder": f"The folder {ro} of the journal",
        "ro_journal_file": f"The journal {rw}/ro.journal (storage journal:{rw}/ro.journal) is "
        "read-only",
    }
    for case, text in expect.items():
        result = got[case]
        assert result.get("error") == "StorageError", (case, result)
        assert result["exit"] == EXIT_BAD_INPUT, (case, result)
        assert text in result["message"], (case, result["message"])
        assert "chmod u+w" in result["message"], (case, result["message"])
    # A report only reads: a read-only storage opens for reading.
    assert got["ro_db_file_for_reading"] == {"ok": ["s"]}
    assert got["ro_journal_for_reading"] == {"ok": ["s"]}
    assert not (ro / "new.db").exists() and not (ro / "sub").exists()
