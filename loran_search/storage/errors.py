"""Every problem with a storage is a :class:`StorageError`; its message names the URL, masked."""

from __future__ import annotations

from loran_search.errors import EXIT_FAILURE, LoranSearchError


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
