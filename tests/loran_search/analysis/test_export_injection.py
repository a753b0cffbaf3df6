"""``activations export`` writes code that carries no code from data (issue 18, probe 1).

The probe named a study ``x\"\"\"; import os; os.system("id>pwned.txt"); \"\"\"``: the name closed
the exported module's docstring and importing the module ran the command. Every value from the
study now lands in a comment (line ends escaped) or in a literal built by ``repr``; ``validate``
refuses such names in the first place. Each hostile module is imported in a fresh process whose
``loran_search.activations`` registry is a stub that records the calls, so the test sees what the
module did.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from loran_search.analysis.forms import ExportedForm, export_code
from loran_search.cli import main

PAYLOAD = 'x"""; import os; os.system("id>pwned.txt"); """'
HOSTILE = [
    PAYLOAD,
    "x'''; import os; os.system('id>pwned.txt'); '''",
    "trailing backslash \\",
    '\\"""; import os; os.system("id>pwned.txt"); #',
    "line\nimport os; os.system('id>pwned.txt')\n#",
    "cr\rimport os; os.system('id>pwned.txt')",
    "ff\x0cvt\x0bnel\x85ls\u2028ps\u2029import os",
    "étude-😀-名前-\u202eevil",
    "surrogate \ud800 alone",
    "nul\x00byte",
]

STUB = """
CALLS = []


def register_formula(*args, **kwargs):
    CALLS.append([list(args), kwargs])
"""

RUNNER = """
import json, sys
sys.path.insert(0, ".")
import exported
import loran_search.activations as activations
json.dump({"study": exported.STUDY, "calls": activations.CALLS}, sys.stdout, ensure_ascii=True)
"""


def form(name: str, *, expr: str = "a*x + x", pname: str = "a") -> ExportedForm:
    return ExportedForm(
        name=name,
        form=name,
        expr=expr,
        params={pname: {"default": 0.1, "low": 0.1, "high": 0.3}},
        trial=3,
        value=0.5,
        confirmed=0.25,
    )


def run_module(tmp_path: Path, code: str) -> dict:
    """Import the exported module in a fresh process (cwd ``tmp_path``); what it registered."""
    (tmp_path / "loran_search").mkdir()
    (tmp_path / "loran_search" / "__init__.py").write_text("")
    (tmp_path / "loran_search" / "activations.py").write_text(STUB)
    (tmp_path / "exported.py").write_text(code, encoding="utf-8", errors="surrogatepass")
    done = subprocess.run(
        [sys.executable, "-I", "-c", RUNNER],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_only_literals(code: str) -> None:
    """A docstring, one import, ``STUDY = <literal>``, then ``register_formula(<literals>)``."""
    tree = ast.parse(code)
    doc, imp, assign, *calls = tree.body
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
    assert "Study" not in doc.value.value.split("\n")[0] or "named below" in doc.value.value
    assert isinstance(imp, ast.ImportFrom) and imp.module == "loran_search.activations"
    assert isinstance(assign, ast.Assign) and isinstance(assign.value, ast.Constant)
    for call in calls:
        assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
        assert isinstance(call.value.func, ast.Name) and call.value.func.id == "register_formula"
        for arg in [*call.value.args, *(k.value for k in call.value.keywords)]:
            ast.literal_eval(arg)  # a literal, nothing that runs


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_values_round_trip_as_data(tmp_path: Path, hostile: str) -> None:
    forms = [form(hostile, expr=hostile, pname=hostile), form("plain")]
    code = export_code(forms, study=hostile, metric=hostile, source=f"cmd {hostile}")
    assert_only_literals(code)
    got = run_module(tmp_path, code)
    assert not (tmp_path / "pwned.txt").exists()
    assert got["study"] == json.loads(json.dumps(hostile))  # the same string, read back
    (name, expr, params), kwargs = got["calls"][0][0], got["calls"][0][1]
    assert [name, expr] == [hostile, hostile] and list(params) == [hostile]
    assert params[hostile] == {"default": 0.1, "low": 0.1, "high": 0.3}
    assert kwargs == {"family": "form"}
    assert got["calls"][1][0][0] == "plain"


def test_plain_names_keep_the_house_style() -> None:
    code = export_code([form("found_1")], study="forms", metric="accuracy", source="cmd")
    assert '"found_1",' in code and '"a*x + x",' in code and 'STUDY = "forms"' in code
    assert "# Study: forms" in code and "# 1. trial 3: accuracy 0.5000 (search)" in code
    assert "it's" in export_code([form("it's")], study="s", metric="m", source="c")


def test_validate_refuses_a_study_name_that_is_not_a_plain_name(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"study:\n  name: {json.dumps(PAYLOAD)}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "s.yaml:2 study.name" in err and "letters, digits, '_', '-' and '.' only" in err
    for bad, what in (
        ("a b", "' '"),
        ("x'''y", '"\'"'),
        ("-flag", "starts with '-'"),
        (".hidden", "starts with '.'"),
        ("semi;colon", "';'"),
    ):
        path.write_text(f"study:\n  name: {json.dumps(bad)}\n")
        assert main(["validate", str(path)]) == 2, bad
        assert what in capsys.readouterr().err, bad
    for good in ("sinter-amplitude_2", "étude.1", "_private", "2026.12.run-3"):
        path.write_text(f"study:\n  name: {json.dumps(good)}\n")
        main(["validate", str(path)])
        assert "study.name" not in capsys.readouterr().err, good
