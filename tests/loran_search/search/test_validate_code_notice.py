"""The trust boundary in ``validate``'s output: a study that imports modules says it runs code.

A study file's ``imports:`` and the ``--import`` flag import Python modules, which executes
them; nothing else in a study file runs code. ``validate`` names those modules in a notice line
(issue 18, item 3).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loran_search.cli import main
from loran_search.cli.study import code_notice

STUDY = """\
study:
  name: t
  storage: sqlite:///{db}
  metric: accuracy
  n_trials: 1
  seeds: [0]
model: {{name: glassllm, quantization: none}}
task: {{name: bbc-news, train_size: 16, eval_size: 8}}
adapter: {{target_modules: [q_proj, v_proj]}}
training: {{max_steps: 2, eval_every: 2}}
search:
  activations: [sinter]
  rank: [4]
"""


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    yield
    mp.undo()


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module whose import leaves a mark (``ran.txt``), importable from ``tmp_path``.

    Each test gets its own module name (from its unique ``tmp_path``), so it really runs.
    """
    name = "".join(c if c.isalnum() else "_" for c in f"trust_plugin_{tmp_path.name}")
    mark = tmp_path / "ran.txt"
    (tmp_path / f"{name}.py").write_text(f"open({str(mark)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def write(tmp_path: Path, imports: str | None = None) -> Path:
    text = STUDY.format(db=tmp_path / "never" / "created.db")
    if imports is not None:
        text = f"imports: {imports}\n" + text
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.out, out.err


def test_a_study_with_imports_says_it_executes_them(capsys, tmp_path, plugin) -> None:
    path = write(tmp_path, f"[{plugin}]")
    code, out, err = validate(capsys, str(path))
    assert code == 0 and f"{path}: OK" in out
    (line,) = [x for x in err.splitlines() if "notice" in x]
    assert line.startswith(f"{path}: notice: this study executes Python code: it imports ")
    assert f"'{plugin}' (imports:)" in line
    assert "importing a module runs it with your permissions" in line
    assert "List only modules you trust" in line
    assert "Nothing else in a study file or an adapter folder" in line
    assert (tmp_path / "ran.txt").read_text() == "ran"  # the notice is true: the code did run


def test_no_imports_no_notice(capsys, tmp_path) -> None:
    code, out, err = validate(capsys, str(write(tmp_path)))
    assert code == 0 and "OK" in out and "notice" not in err


def test_the_import_flag_and_a_set_override_are_named(capsys, tmp_path, plugin) -> None:
    path = write(tmp_path)
    code, _, err = validate(capsys, str(path), "--import", "json", "--set", f"imports=[{plugin}]")
    assert code == 0
    assert f"'{plugin}' (imports:), 'json' (--import)" in err
    assert (tmp_path / "ran.txt").exists()


def test_a_failing_import_is_still_named(capsys, tmp_path, monkeypatch) -> None:
    """It ran (and raised): the notice names it next to the error."""
    (tmp_path / "trust_broken_q.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = validate(capsys, str(write(tmp_path, "[trust_broken_q]")))
    assert code == 2
    assert "'trust_broken_q' (imports:)" in err and "imports[0]" in err and "boom" in err


def test_code_notice_names_each_module_once() -> None:
    assert code_notice("f.yaml", [], []) is None
    line = code_notice("f.yaml", ["a", "a", "b"], ["b", "c"])
    assert line is not None
    assert "it imports 'a' (imports:), 'b' (imports:), 'c' (--import), and" in line
