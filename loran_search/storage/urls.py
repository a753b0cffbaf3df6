"""Storage URLs: parse and classify one, mask its password, and where its artifacts go.

Imports nothing heavy (no Optuna, no SQLAlchemy): ``validate`` and the command line use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from loran_search.storage.errors import StorageURLError

RDB_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb")
EXAMPLES = (
    "sqlite:///runs/loran-search.db, journal:runs/study.journal, "
    "postgresql://user@127.0.0.1:5432/optuna, mysql://user:password@host/optuna"
)

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
