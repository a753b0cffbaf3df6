"""The environment fingerprint (issue 22): its fields, differences, the resume warning, `env`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loran_search import environment as E
from loran_search.cli import build_parser, main
from loran_search.cli._examples import EXAMPLES, subcommands

CPUINFO = """\
processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse4_2 avx avx2 fma f16c avx512f avx512_bf16 amx_tile amx_bf16 made_up
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu sse4_2 avx avx2 fma f16c avx512f avx512_bf16 amx_tile amx_bf16 made_up
"""


def test_machine_fingerprint_reads_cpuinfo_and_versions_without_torch(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    fp = E.machine_fingerprint(str(info))
    assert fp["cpu_model"] == "Intel(R) Xeon(R) Platinum 8488C"
    assert fp["cpu_flags"] == "sse4_2 avx avx2 fma f16c avx512f avx512_bf16 amx_tile amx_bf16"
    assert fp["cores"] >= 1 and fp["machine"] and fp["python"]
    from importlib.metadata import version

    assert fp["torch"] == version("torch") and fp["peft"] == version("peft")
    assert fp["transformers"] == version("transformers")
    assert fp["bitsandbytes"] == version("bitsandbytes")
    fp["cpu_model"] = "changed"  # a copy: the cached one stays
    assert E.machine_fingerprint(str(info))["cpu_model"] == "Intel(R) Xeon(R) Platinum 8488C"
    missing = E.machine_fingerprint(str(tmp_path / "none"))
    assert missing["cpu_model"] and missing["cpu_flags"] == ""
    # the CLI start path and `env` never import torch
    code = "import sys, loran_search.environment as e; e.machine_fingerprint(); " \
        "print('torch' in sys.modules)"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_trial_fingerprint_has_the_runtime_fields_once_torch_is_loaded() -> None:
    import torch

    fp = E.trial_fingerprint(compute_dtype="bfloat16", quantization="nf4")
    assert fp["compute_dtype"] == "bfloat16" and fp["quantization"] == "nf4"
    assert fp["threads"] == torch.get_num_threads()
    assert fp["deterministic"] is torch.are_deterministic_algorithms_enabled()
    assert fp["device"] == "cpu" or torch.cuda.is_available()


def test_differences_and_the_resume_warning() -> None:
    here = {"cpu_model": "AMD EPYC", "cpu_flags": "avx2", "cores": 2, "torch": "2.13.0"}
    same = dict(here, os="another kernel")  # os is not compared
    other = dict(here, cpu_model="Intel Xeon", cpu_flags="avx2 avx512_bf16", torch="2.13.1")
    assert E.differences(same, here) == []
    assert E.differences(other, here) == [
        "cpu_model: 'Intel Xeon' → 'AMD EPYC'",
        "cpu_flags: 'avx2 avx512_bf16' → 'avx2'",
        "torch: '2.13.1' → '2.13.0'",
    ]
    assert E.differences({"cpu_model": "x"}, {"cores": 2}) == []  # older: nothing in common
    assert E.resume_warning({0: same, 1: same}, here) is None
    assert E.resume_warning({}, here) is None
    text = E.resume_warning({0: other, 1: other, 2: same}, here)
    assert text is not None and text.startswith("loran-search: warning:")
    assert "trials 0, 1: cpu_model: 'Intel Xeon' → 'AMD EPYC'" in text
    assert "torch: '2.13.1' → '2.13.0'" in text and "trials 2" not in text


def test_env_command_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env"]) == 0
    text = capsys.readouterr().out
    for key in ("cpu_model", "cpu_flags", "cores", "torch", "transformers", "peft"):
        assert any(line.split()[0] == key for line in text.splitlines()), key
    assert main(["env", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == E.machine_fingerprint()
    assert main(["env", "--torch", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data["threads"], int) and data["device"]


def test_every_sub_command_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    commands = subcommands(build_parser())
    assert {"run", "worker", "env", "dashboard", "activations list", "bench storage"} <= {
        path for path, _ in commands
    }
    for path, parser in commands:
        assert path in EXAMPLES, f"`loran-search {path} --help` has no examples"
        text = parser.format_help()
        assert "examples:\n  loran-search" in text, path
        assert all(line.startswith(("loran-search", "#", "CUDA_VISIBLE_DEVICES")) for line in
                   EXAMPLES[path]), path  # fmt: skip
    assert set(EXAMPLES) <= {path for path, _ in commands}  # no example of a gone command


def test_dashboard_host_flag_and_warning() -> None:
    from loran_search.cli.study import host_warning

    args = build_parser().parse_args(["dashboard", "--storage", "sqlite:///x.db"])
    assert args.host == "127.0.0.1"
    args = build_parser().parse_args(["dashboard", "x.yaml", "--host", "0.0.0.0"])
    assert args.host == "0.0.0.0"
    for host in ("127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"):
        assert host_warning(host) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.5", "my-server.lan"):
        warning = host_warning(host)
        assert warning is not None and host in warning and "no authentication" in warning


def test_gpu_names_come_from_the_driver_files(tmp_path: Path) -> None:
    for bus, name in (("0000:01:00.0", "NVIDIA H100 80GB HBM3"), ("0000:02:00.0", "NVIDIA A10")):
        d = tmp_path / bus
        d.mkdir()
        (d / "information").write_text(f"Model: \t\t {name}\nIRQ:   42\nGPU UUID: GPU-x\n")
    assert E._gpus(str(tmp_path / "*" / "information")) == "NVIDIA H100 80GB HBM3, NVIDIA A10"
    assert E._gpus(str(tmp_path / "none" / "information")) == ""
