"""The check on a SQLite or journal file before it is opened (not at the first write)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from loran_search.storage.errors import StorageError, StorageMissing

if TYPE_CHECKING:
    from loran_search.storage.urls import StorageURL

_SQLITE_HEADER = b"SQLite format 3\x00"
NOT_SQLITE_FIX = (
    "Point the storage at the study's .db file, or move this file away to start a new study at "
    "that path."
)


def check_file(parsed: StorageURL, *, create: bool, writable: bool) -> None:
    """Refuse a file that :func:`~loran_search.storage.open_storage` cannot use, up front.

    That is a folder, a missing file (``create=False``; otherwise its folders are made), a
    read-only file or folder (``writable``), or the wrong kind of file: a journal named as a
    SQLite database or the reverse.
    """
    path = parsed.path
    assert path is not None
    what = "journal" if parsed.kind == "journal" else "SQLite database"
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
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_HEADER))
    if parsed.kind == "journal" and head == _SQLITE_HEADER:
        raise StorageError(
            f"{path} is a SQLite database, not a journal (storage {parsed.shown}).",
            fix=f"Use sqlite:///{path}.",
        )
    if parsed.kind == "sqlite" and head and head != _SQLITE_HEADER:
        hint = f" It looks like an Optuna journal: use journal:{path}." if head[:1] == b"{" else ""
        raise StorageError(
            f"{path} is not a SQLite database (storage {parsed.shown}).{hint}", fix=NOT_SQLITE_FIX
        )
