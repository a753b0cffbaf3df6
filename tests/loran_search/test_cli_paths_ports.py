"""Command-line inputs that raised tracebacks now get clear errors (issue 18, probe 10).

``activations export --out`` a folder or into a missing folder; ``dashboard --port`` in use,
``99999`` or ``-1``. Each case checks the exit code, the message and that no traceback shows.
"""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from loran_search.analysis.forms import ExportedForm
from loran_search.cli import main

STUDY = "study: {name: forms, storage: 'sqlite:///%s'}\n"


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err


@pytest.fixture
def exportable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A study file whose (stubbed) storage holds one completed form."""
    form = ExportedForm("found_1", "a*x + x", "a*x + x", {"a": {"default": 0.1}}, 3, 0.5)
    monkeypatch.setattr(
        "loran_search.analysis.api.load_study",
        lambda storage, name: SimpleNamespace(metric_names=["accuracy"]),
    )
    monkeypatch.setattr("loran_search.analysis.forms.best_forms", lambda *a, **k: [form])
    path = tmp_path / "s.yaml"
    path.write_text(STUDY % (tmp_path / "forms.db"))
    return path


def test_export_out_a_folder_is_refused(exportable: Path, tmp_path: Path, capsys) -> None:
    code, err = _main(capsys, "activations", "export", str(exportable), "--out", str(tmp_path))
    assert code == 2 and f"--out {tmp_path} is a folder" in err
    assert f"--out {tmp_path / 'found_forms.py'}" in err


def test_export_out_into_a_missing_folder_creates_it(
    exportable: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "new" / "deeper" / "found.py"
    code, err = _main(capsys, "activations", "export", str(exportable), "--out", str(out))
    assert code == 0, err
    assert 'register_formula(\n    "found_1",' in out.read_text()


def test_export_out_under_a_file_is_a_clear_error(exportable: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "plain").write_text("x")
    code, err = _main(
        capsys, "activations", "export", str(exportable), "--out", str(tmp_path / "plain" / "f.py")
    )
    assert code == 2 and "Cannot write --out" in err and "plain is a file, not a folder" in err


@pytest.mark.parametrize(
    ("port", "what"),
    [("99999", "99999 is not a TCP port"), ("-1", "-1 is not a TCP port"), ("0", "0 is not")],
)
def test_dashboard_port_out_of_range(tmp_path: Path, capsys, port: str, what: str) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code, err = _main(capsys, "dashboard", "--storage", url, "--port", port)
    assert code == 2 and what in err and "1 to 65535" in err


def test_dashboard_port_in_use(tmp_path: Path, capsys) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        url = f"sqlite:///{tmp_path / 'x.db'}"
        code, err = _main(capsys, "dashboard", "--storage", url, "--port", str(port))
    assert code == 2 and f"Port {port} on 127.0.0.1 is in use" in err and "--port" in err
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened
