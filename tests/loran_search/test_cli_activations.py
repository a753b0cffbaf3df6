"""``loran-search activations list | audit | plot``: JSON shapes, errors, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from activations import list_activations, unregister
from loran_search.cli import main

HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "optuna", "sympy")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "activations", "list", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["name"] for d in data] == list_activations()
    for d in data:
        assert set(d) == {"name", "family", "expr", "params"}
        for p in d["params"].values():
            assert {"default", "low", "high", "log"} <= set(p)
    sinter = next(d for d in data if d["name"] == "sinter")
    assert sinter["params"]["amplitude"]["default"] == 5e-5


def test_list_table_and_filters(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "activations", "list", "--family", "orthogonal")
    assert code == 0
    assert "legendre" in out and "sinter " not in out
    assert "3 activations (orthogonal: 3)." in out
    code, out, _ = _run(capsys, "activations", "list", "--pattern", "sinter_*", "--format", "json")
    assert {d["name"] for d in json.loads(out)} == set(list_activations(pattern="sinter_*"))


def test_list_unknown_family(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "activations", "list", "--family", "sintr")
    assert code == 2 and "Unknown family 'sintr'. Did you mean 'sinter'?" in err


def test_audit_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "activations",
        "audit",
        "sigmoid",
        "sinter",
        "--set",
        "sinter.amplitude=1e-3",
        "--expr",
        "x + a*x*sin(w*x)",
        "--set",
        "a=0.01",
        "--set",
        "w=10",
        "--interval=-2,2",
        "--format",
        "json",
    )
    assert code == 0
    data = json.loads(out)
    assert [d["name"] for d in data] == ["sigmoid", "sinter", "x + a*x*sin(w*x)"]
    for d in data:
        assert list(d) == [
            "name",
            "params",
            "f0",
            "df0",
            "lipschitz",
            "interval",
            "starts_at_zero",
            "warnings",
        ]
        assert d["interval"] == [-2.0, 2.0]
    assert data[0]["f0"] == 0.5 and data[0]["starts_at_zero"] is False
    assert data[0]["warnings"][0] == (
        "f(0) = 0.5: the update starts at 0.5·alpha/r in every entry, not at zero"
    )
    assert data[1]["params"] == {"amplitude": 1e-3, "frequency": 1e4}
    assert data[2]["params"] == {"a": 0.01, "w": 10.0}


def test_audit_table_defaults_to_every_activation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "activations", "audit")
    assert code == 0
    for name in list_activations():
        assert f"\n{name} " in out
    assert "not at zero" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "sinter.amplitude"], "write NAME.PARAM=VALUE"),
        (["--set", "sinter.amplitude=big"], "'big' is not a number"),
        (["--set", "sinter.amplitud=1"], "has no parameter 'amplitud'. Did you mean 'amplitude'"),
        (["--set", "sinter.amplitude=50"], "is outside its declared range"),
        (["--set", "sigmoid.beta=1"], "'sigmoid' has no parameter 'beta'"),
        (["--set", "swish.beta=2"], "'swish' is not among the activations being processed"),
        (["--set", "a=1"], "applies to --expr formulas, but none was given"),
        (["--interval", "1"], "--interval expects two numbers 'a,b'"),
        (["--interval", "2,1"], "--interval needs finite a < b"),
        (["--interval", "0,inf"], "--interval needs finite a < b"),
        (["--expr", "x + q*x"], "unknown name 'q'"),
        (["--expr", "x.real"], "at column 2 ('.')"),
        (["--expr", "__import__('os')"], "double underscores"),
    ],
)
def test_audit_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = _run(capsys, "activations", "audit", "sinter", "sigmoid", *argv)
    assert code == 2, (out, err)
    assert message in err and err.startswith("loran-search: error:")


def test_audit_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "activations", "audit", "sinterr")
    assert code == 2 and "Did you mean 'sinter'" in err


def test_plot_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plots" / "sinter.png"
    code, stdout, _ = _run(
        capsys,
        "activations",
        "plot",
        "sinter",
        "tanh",
        "--set",
        "sinter.amplitude=1e-2",
        "--set",
        "sinter.frequency=20",
        "--out",
        str(out),
    )
    assert code == 0 and f"wrote {out}" in stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sinter", "--out", "x.txt"], "use a .png"),
        (["sinter", "--set", "amplitude=1", "--out", "x.png"], "write NAME.PARAM=VALUE"),
        (["sinter", "--set", "sinter.frequency=0", "--out", "x.png"], "outside its declared"),
        (["nope", "--out", "x.png"], "Unknown activation 'nope'"),
    ],
)
def test_plot_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [str(tmp_path / a) if a.endswith((".png", ".txt")) else a for a in argv]
    code, _, err = _run(capsys, "activations", "plot", *argv)
    assert code == 2 and message in err


def test_import_plugin_then_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cli_plugin_mod.py").write_text(
        textwrap.dedent(
            """
            from activations import register_activation

            @register_activation("cli_plugin_act", family="baseline", expr="2*x")
            def double(x):
                \"\"\"Twice the input.\"\"\"
                return 2 * x
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, out, _ = _run(
            capsys, "activations", "list", "--import", "cli_plugin_mod", "--format", "json"
        )
        assert code == 0 and "cli_plugin_act" in {d["name"] for d in json.loads(out)}
        code, out, _ = _run(capsys, "activations", "audit", "cli_plugin_act", "--format", "json")
        assert json.loads(out)[0]["lipschitz"] == pytest.approx(2.0)
    finally:
        unregister("cli_plugin_act")
        sys.modules.pop("cli_plugin_mod", None)


def test_list_imports_no_heavy_stack() -> None:
    """`activations list` (and `import loran_search.cli`) import neither torch nor sympy."""
    code = (
        "import sys, io, contextlib\n"
        "from loran_search.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['activations', 'list']) == 0\n"
        "    assert main(['activations', 'list', '--format', 'json']) == 0\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_audit_reports_an_unreadable_plugin_expr(capsys: pytest.CaptureFixture[str]) -> None:
    from activations import register_activation

    register_activation("scratch_badexpr", family="custom", expr="x.real")(lambda x: x)
    try:
        code, _, err = _run(capsys, "activations", "audit", "scratch_badexpr")
    finally:
        unregister("scratch_badexpr")
    assert code == 2
    assert "Activation 'scratch_badexpr'" in err and "attribute access" in err


@pytest.mark.parametrize("columns", ["72", "0", None])
def test_list_table_fits_the_terminal_width(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: str | None
) -> None:
    """The table (rich) fits COLUMNS, or 100 columns without a usable width (issue 22)."""
    from loran_search.console import FALLBACK_COLUMNS

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    code, out, _ = _run(capsys, "activations", "list")
    assert code == 0
    width = int(columns) if columns and int(columns) > 0 else FALLBACK_COLUMNS
    table = out.split("\n\n")[0].splitlines()
    assert max(len(line) for line in table) <= width
    assert table[0].split() == ["name", "family", "defaults", "f(x)"]
    names = {line.split()[0] for line in table[2:] if line and not line.startswith(" ")}
    assert names == set(list_activations())  # every name on its own, unwrapped
