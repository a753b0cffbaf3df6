"""The packaged training-function stand-in: import-light, and the result its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from loran_search import record as R
from loran_search.search.objective import RunOutcome
from loran_search.testing import run

CFG = SimpleNamespace(
    task=SimpleNamespace(eval_split="val", eval_size=5), training=SimpleNamespace(max_steps=6)
)


def test_importing_it_imports_no_torch() -> None:
    code = "import sys, loran_search.testing; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_run_is_a_result_the_search_accepts() -> None:
    steps: list[int] = []
    result = run(CFG, activation="sinter", activation_params={"amplitude": 1e-2}, rank=8, seed=1,
                 on_eval=lambda step, m: steps.append(step))  # fmt: skip
    assert steps == [2, 4, 6] and result.status == "completed"
    assert result.metrics["accuracy"] == pytest.approx(0.5 + 0.01 + 0.1 + 0.001)
    assert len(result.examples) == 5 and result.eval_split == "val"
    assert result.mechanism["inert"] is False  # ν = 1e-2/√2 is above the inert threshold
    assert R.p_abs_max(result.mechanism) == pytest.approx(4.5e-3)
    RunOutcome.from_result(result, source="loran_search.testing:run")  # no key refused


def test_the_environment_rehearses_failures(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_DIVERGE_ABOVE", "1e-3")
    kw = {"activation": "sinter", "rank": 8, "seed": 0}
    assert run(CFG, activation_params={"amplitude": 1e-2}, **kw).status == "diverged"
    assert run(CFG, activation_params={"amplitude": 1e-4}, **kw).status == "completed"
    monkeypatch.setenv("FAKE_TRAIN_RAISE", "MemoryError")
    with pytest.raises(MemoryError, match="fake MemoryError for sinter seed 0"):
        run(CFG, activation_params={}, **kw)
