"""The report's Environment block (issue 22): one line per machine, a caution when mixed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from optuna.trial import TrialState

from loran_search.analysis import write_report
from loran_search.analysis.environment import trial_ranges
from tests.loran_search.analysis.conftest import new_study

FP = {
    "cpu_model": "AMD EPYC", "cpu_flags": "avx avx2 fma", "cores": 2, "machine": "x86_64",
    "gpus": "", "os": "Linux", "python": "3.11.7", "torch": "2.13.0+cpu",
    "transformers": "5.24.0", "peft": "0.21.2", "bitsandbytes": "0.50.2", "optuna": "5.0.0",
    "loran_search": "0.1.0", "compute_dtype": "float32", "quantization": "nf4", "threads": 2,
    "deterministic": False, "device": "cpu",
}  # fmt: skip


def _write(study, out: Path) -> tuple[str, str, dict]:
    write_report(storage=study._storage, study_name=study.study_name, out_dir=out,
                 formats=("md", "html", "json", "csv"), dashboard=False)  # fmt: skip
    return (
        (out / "report.md").read_text(),
        (out / "report.html").read_text(),
        json.loads((out / "report.json").read_text()),
    )


def test_one_machine_one_line_and_the_json_carries_it(tmp_path: Path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.80, 1: 0.82, 2: 0.81}, attrs={"environment": FP})
    for amp in (1e-4, 1e-3):
        b.add("sinter", 8, {0: 0.81, 1: 0.83, 2: 0.80}, amplitude=amp, attrs={"environment": FP})
    md, html, report = _write(study, tmp_path / "r")
    block = md.split("## Environment")[1].split("\n## ")[0]
    assert "- Trials 0–2 (baseline, candidate): CPU AMD EPYC (avx avx2 fma), 2 cores, x86_64; " \
        "torch 2.13.0+cpu, transformers 5.24.0, peft 0.21.2, bitsandbytes 0.50.2; compute " \
        "dtype float32, quantization nf4; 2 threads, deterministic algorithms off, " \
        "device cpu." in block  # fmt: skip
    assert "environments" not in block  # one machine: no caution
    assert '<section class="environment" id="environment"><h2>Environment</h2>' in html
    assert report["environments"] == [
        {"fingerprint": FP, "trials": [0, 1, 2], "roles": ["baseline", "candidate"]}
    ]
    # configurations.csv keeps its columns and adds method and trainable_params at the end
    csv = pd.read_csv(tmp_path / "r" / "configurations.csv")
    assert list(csv.columns[-2:]) == ["method", "trainable_params"]
    assert set(csv["method"]) == {"loran"} and set(csv["trainable_params"]) == {10}
    assert not (tmp_path / "r" / "peers.csv").exists()  # no peer arms: no peers table


def test_two_machines_and_an_old_record_are_named(tmp_path: Path) -> None:
    study, b = new_study()
    other = dict(FP, cpu_model="Intel Xeon Platinum 8488C", cpu_flags="avx2 avx512_bf16 amx_bf16")
    b.add("identity", 8, {0: 0.80, 1: 0.82}, attrs={"environment": FP})
    b.add("sinter", 8, {0: 0.81, 1: 0.83}, amplitude=1e-4, attrs={"environment": FP})
    b.add("sinter", 8, {0: 0.81, 1: 0.80}, amplitude=1e-3, attrs={"environment": other})
    b.add("sinter", 8, {0: 0.79, 1: 0.80}, amplitude=1e-2)  # written before the fingerprint
    md, _, _ = _write(study, tmp_path / "r")
    block = md.split("## Environment")[1].split("\n## ")[0]
    assert "- Trials 0–1 (baseline, candidate): CPU AMD EPYC" in block
    assert "- Trials 2 (candidate): CPU Intel Xeon Platinum 8488C (avx2 avx512_bf16" in block
    assert "- Trials 3 (candidate): not recorded" in block
    assert "**The study ran in 2 environments.**" in block


def test_a_trial_that_never_trained_is_not_called_an_old_record(tmp_path: Path) -> None:
    """An inert configuration skipped before training has no environment because it never
    ran, not because it was written before the fingerprint existed (the default study's
    trials 1-3 were reported so)."""
    study, b = new_study()
    b.add("identity", 8, {0: 0.80, 1: 0.82}, attrs={"environment": FP})
    b.add("sinter", 8, None, amplitude=1e-5, state=TrialState.FAIL, history=False,
          failure="inert: predicted nu = 7e-06 < threshold 0.001")  # fmt: skip
    b.add("sinter", 8, {0: 0.81, 1: 0.83}, amplitude=1e-2, attrs={"environment": FP})
    md, _, report = _write(study, tmp_path / "r")
    block = md.split("## Environment")[1].split("\n## ")[0]
    assert "- Trials 0, 2 (baseline, candidate): CPU AMD EPYC" in block
    assert "not recorded" not in block and "Trials 1 " not in block
    assert report["environments"] == [
        {"fingerprint": FP, "trials": [0, 2], "roles": ["baseline", "candidate"]}
    ]


def test_trial_ranges() -> None:
    assert trial_ranges([5, 0, 1, 2, 7, 8]) == "0–2, 5, 7–8"
    assert trial_ranges([]) == ""
