"""A user's own ``activations.py`` in the working folder must not break the tool (issue 22).

The registry ships as the top-level package ``activations``; a file of that name in the working
folder comes first on ``sys.path`` and hides it. The tool imports the registry only as
``loran_search.activations``, which loads a private copy in that case and leaves the user's
module to the user. Each check runs a fresh interpreter whose working folder holds such a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Two kinds of user file: one that defines something else, one that cannot even be imported.
HOSTILE = {
    "unrelated": "MINE = 'the user activations.py'\n",
    "broken": "raise ImportError('the user activations.py fails on import')\n",
}


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout, behind the working folder as on a user's box
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(params=sorted(HOSTILE))
def user_folder(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    (tmp_path / "activations.py").write_text(HOSTILE[request.param], encoding="utf-8")
    return tmp_path


def test_the_cli_lists_activations_beside_a_user_activations_py(
    user_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # the console script's entry point, run the way `python -c`/a notebook would run it
    argv = ["activations", "list", "--format", "json"]
    code = f"import sys; from loran_search.cli import main; sys.exit(main({argv!r}))"
    out = _run(user_folder, "-c", code)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert "sinter" in {row["name"] for row in listed}
    clean = _run(tmp_path_factory.mktemp("clean"), "-c", code)  # no activations.py there
    assert clean.returncode == 0, clean.stderr
    assert listed == json.loads(clean.stdout)  # the same registry, built-ins and all


def test_the_adapters_import_beside_a_user_activations_py(user_folder: Path) -> None:
    code = (
        "import loran_search.adapters, loran_search.activations as reg\n"
        "from loran_search.activations.registry import get_spec\n"
        "assert reg.get_spec('sinter') is get_spec('sinter')\n"  # one registry, not two
        "assert reg.parse_formula('sin(x)') is not None\n"  # the lazy re-exports load too
        "print(reg.__name__)\n"
    )
    out = _run(user_folder, "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loran_search.activations"  # the private copy


def test_the_user_keeps_their_own_activations_module(tmp_path: Path) -> None:
    (tmp_path / "activations.py").write_text(HOSTILE["unrelated"], encoding="utf-8")
    code = (
        "import activations\n"
        "import loran_search.adapters\n"
        "import activations as again\n"
        "assert again is activations and again.MINE == 'the user activations.py'\n"
        "import loran_search.activations as reg\n"
        "assert reg is not activations and reg.get_spec('sinter').name == 'sinter'\n"
    )
    out = _run(tmp_path, "-c", code)
    assert out.returncode == 0, out.stderr


def test_without_a_shadow_both_names_are_one_package(tmp_path: Path) -> None:
    code = (
        "import activations, loran_search.activations as reg\n"
        "import loran_search.activations.registry as r1, activations.registry as r2\n"
        "assert reg is activations and r1 is r2\n"
        "from activations import Param, register_activation\n"
        "@register_activation('shadow_test_tanh', family='shadow_test', expr='tanh(a*x)',\n"
        "                     params={'a': Param(1.0, low=0.1, high=10.0)})\n"
        "def f(x, a):\n"
        "    return (a * x).tanh()\n"
        "assert reg.get_spec('shadow_test_tanh').name == 'shadow_test_tanh'\n"
    )
    out = _run(tmp_path, "-c", code)
    assert out.returncode == 0, out.stderr
