"""Paths derived from the study name stay inside their folders (issue: names used as paths)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loran_search.cli.study import report_dir
from loran_search.errors import UsageError
from loran_search.search.workers import adapters_dir_of


def test_a_plain_name_gives_its_folder(tmp_path: Path) -> None:
    assert adapters_dir_of(tmp_path, "sinter-2") == tmp_path / "adapters" / "sinter-2"
    assert report_dir("sinter-2", tmp_path / "reports") == tmp_path / "reports" / "sinter-2"


@pytest.mark.parametrize("name", ["../../outside", "..", "a/../../b", "/etc"])
def test_a_name_that_leaves_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="outside"):
        adapters_dir_of(tmp_path, name)
    with pytest.raises(UsageError, match="cannot name a report folder"):
        report_dir(name, tmp_path / "reports")
    assert not (tmp_path / "outside").exists()
