"""Journal files with a cut last line are mended before any write; a broken middle is refused.

Every test uses a real ``JournalStorage`` on a real file: trials are written, the file is cut the
way a process killed mid-write leaves it, then the journal is opened through
:func:`loran_search.storage.open_storage`, written again and reopened by a plain Optuna reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from loran_search.errors import EXIT_BAD_INPUT, LoranSearchError
from loran_search.storage import JournalCorruptError, check_journal, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def plain(path: Path) -> JournalStorage:
    """Optuna's own journal storage, without loran-search's checks (the reader of record)."""
    return JournalStorage(JournalFileBackend(str(path)))


def complete_params(path: Path) -> list[float]:
    """The ``x`` of every complete trial, read back by a plain Optuna reader."""
    study = optuna.load_study(study_name="s", storage=plain(path))
    return [t.params["x"] for t in study.get_trials(states=(TrialState.COMPLETE,))]


@pytest.fixture
def journal(tmp_path: Path) -> tuple[Path, list[float]]:
    """A journal holding study ``s`` with 3 complete trials and a long last record."""
    path = tmp_path / "x.journal"
    study = optuna.create_study(study_name="s", storage=open_storage(f"journal:{path}"))
    study.optimize(objective, n_trials=3)
    study.set_user_attr("note", "n" * 300)  # the last record: the one a crash cuts
    return path, complete_params(path)


def cut_last_line(path: Path, keep: int = 120) -> bytes:
    """Cut the last record after ``keep`` bytes (a process killed mid-write); returns the file."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + keep])
    return path.read_bytes()


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.bak-*"))


def test_cut_last_line_is_mended_before_writing(journal: tuple[Path, list[float]]) -> None:
    path, xs = journal
    cut = cut_last_line(path)
    notes: list[str] = []
    storage = open_storage(f"journal:{path}", log=notes.append)
    # Reported once, with the file and the backup; the backup is the file as it was.
    assert len(notes) == 1 and str(path) in notes[0] and "cut off mid-write" in notes[0]
    (backup,) = backups(path)
    assert str(backup) in notes[0]
    assert backup.read_bytes() == cut
    assert path.read_bytes().endswith(b"\n")
    # Write again (before: onto the cut line), then reopen: every complete trial is there.
    study = optuna.load_study(study_name="s", storage=storage)
    study.optimize(objective, n_trials=2)
    again = complete_params(path)
    assert again[:3] == xs and len(again) == 5
    assert all(json.loads(line) for line in path.read_bytes().splitlines())
    # A second open finds nothing to do.
    notes.clear()
    optuna.load_study(study_name="s", storage=open_storage(f"journal:{path}", log=notes.append))
    assert notes == [] and len(backups(path)) == 1


def test_a_whole_last_record_without_its_newline_is_kept(
    journal: tuple[Path, list[float]],
) -> None:
    path, xs = journal
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    notes: list[str] = []
    study = optuna.load_study(
        study_name="s", storage=open_storage(f"journal:{path}", log=notes.append)
    )
    assert "lacked its newline" in notes[0]
    study.optimize(objective, n_trials=1)
    reread = optuna.load_study(study_name="s", storage=plain(path))
    assert reread.user_attrs["note"] == "n" * 300  # the record was not thrown away
    assert complete_params(path)[:3] == xs


def test_an_append_onto_the_cut_line_keeps_the_appended_record(
    journal: tuple[Path, list[float]],
) -> None:
    """The state an old run left: one record appended onto the cut line (Optuna skips it)."""
    path, _ = journal
    cut_last_line(path)
    optuna.load_study(study_name="s", storage=plain(path)).set_user_attr("after", 1)
    assert b'"}{"op_code"' not in path.read_bytes()  # the record really joined the cut line
    notes: list[str] = []
    study = optuna.load_study(
        study_name="s", storage=open_storage(f"journal:{path}", log=notes.append)
    )
    assert "later record is kept" in notes[0]
    study.optimize(objective, n_trials=1)
    reread = optuna.load_study(study_name="s", storage=plain(path))
    assert reread.user_attrs["after"] == 1
    assert len(complete_params(path)) == 4


def test_a_journal_broken_in_the_middle_is_refused_with_the_line(
    journal: tuple[Path, list[float]],
) -> None:
    path, xs = journal
    cut_last_line(path)
    old = optuna.load_study(study_name="s", storage=plain(path))
    old.set_user_attr("a", 1)  # joins the cut line (the bad append of the old code) ...
    with pytest.raises(json.JSONDecodeError):  # ... this one makes it a middle line, and
        old.set_user_attr("b", 2)
    with pytest.raises(json.JSONDecodeError):  # every later `run` and `report` failed so
        plain(path)
    before = path.read_bytes()
    lines = before.count(b"\n")
    with pytest.raises(JournalCorruptError) as caught:
        open_storage(f"journal:{path}")
    err = caught.value
    assert isinstance(err, LoranSearchError) and err.exit_code == EXIT_BAD_INPUT
    bad = lines - 1  # the cut line, now followed by `b`
    assert f"{path}" in str(err) and f"line {bad} of {lines}" in str(err)
    assert f"head -n {bad - 1}" in str(err)  # the fix: cut the file before that line
    assert "delete the first 120 characters" in str(err)  # or drop just the cut record
    assert path.read_bytes() == before  # nothing touched
    # Following the first fix gives a journal with every complete trial.
    path.write_bytes(b"".join(before.splitlines(keepends=True)[: bad - 1]))
    optuna.load_study(study_name="s", storage=open_storage(f"journal:{path}"))
    assert complete_params(path) == xs


def test_an_open_storage_mends_a_line_another_worker_cut(
    journal: tuple[Path, list[float]],
) -> None:
    """A worker keeps the journal open while another dies mid-write: its next append mends."""
    path, _ = journal
    notes: list[str] = []
    study = optuna.load_study(
        study_name="s", storage=open_storage(f"journal:{path}", log=notes.append)
    )
    with path.open("ab") as f:  # the other worker's unfinished write
        f.write(b'{"op_code":8,"worker_id":"w","study_id":0,"user_at')
    study.optimize(objective, n_trials=1)
    assert len(notes) == 1 and "cut off mid-write" in notes[0]
    assert len(complete_params(path)) == 4
    assert plain(path)  # the whole file reads


def test_check_journal_reports_without_repair(journal: tuple[Path, list[float]]) -> None:
    path, _ = journal
    cut = cut_last_line(path)
    (note,) = check_journal(path, repair=False)
    assert "not repaired" in note and str(path) in note
    assert path.read_bytes() == cut and backups(path) == []
    assert check_journal(path.with_name("none.journal")) == []


def test_report_side_reads_a_cut_journal_and_mends_it(
    journal: tuple[Path, list[float]],
) -> None:
    """``loran-search report`` goes through the analysis's ``load_study``: the same repair."""
    from loran_search.analysis.api import load_study

    path, xs = journal
    cut_last_line(path)
    notes: list[str] = []
    study = load_study(f"journal:{path}", "s", log=notes.append)
    assert [t.params["x"] for t in study.get_trials(states=(TrialState.COMPLETE,))] == xs
    assert "Repaired the journal" in notes[0]
    study.set_user_attr("report", "done")  # the report's dashboard note: a write
    assert optuna.load_study(study_name="s", storage=plain(path)).user_attrs["report"] == "done"
