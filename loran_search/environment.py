"""The environment fingerprint: which machine and software stack produced a trial's numbers.

Same machine, same seed, same code → the same metrics: training is seeded (adapter
initialisation, dropout, data order) and the evaluation is greedy. Across machines that no
longer holds: the CPU's vector units pick different matrix-multiplication kernels (AVX2,
AVX-512, AMX; reduced-precision ``bfloat16`` paths most of all), which sum in another order and
round differently, and a few thousand optimizer steps amplify those last-bit differences into
a different adapter. The same study and seeds gave val 0.8879 / test 0.8073 against QLoRA's
0.8289 on one machine and val 0.8834 / test 0.8088 against 0.8326 on another (issue 22). So
every trial records where it ran (user attr :data:`loran_search.record.ENVIRONMENT`), the
report shows it, and ``loran-search run`` says when it resumes a study on a machine whose
fingerprint differs.

The fingerprint is a flat JSON mapping:

* ``cpu_model``: the CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`);
* ``cpu_flags``: the instruction-set extensions that choose kernels (:data:`KERNEL_FLAGS`
  present on this CPU, space-separated; empty when the CPU does not say);
* ``cores``: logical CPUs (:func:`os.cpu_count`); ``machine``: :func:`platform.machine`;
  ``os``: :func:`platform.platform`; ``python``: the interpreter's version;
* ``gpus``: the NVIDIA GPUs' model names from the driver's ``/proc`` files (Linux), ``""``
  when none;
* ``torch``, ``transformers``, ``peft``, ``bitsandbytes``, ``optuna``, ``loran_search``: the
  installed versions (from package metadata: nothing is imported);
* in a worker, with the training setup: ``compute_dtype`` and ``quantization`` (``model:``),
  ``threads`` (torch's intra-op threads), ``deterministic`` (torch's deterministic-algorithms
  setting) and ``device`` (``cpu`` or the CUDA device's name); the last three only once torch
  is loaded (``None`` before).

:func:`machine_fingerprint` never imports torch (the CLI's start path and ``loran-search env``
stay fast); :func:`trial_fingerprint` adds the runtime fields. :func:`differences` compares two
fingerprints on :data:`COMPARED_KEYS`, the fields that change the numbers.

This module imports only the standard library.
"""

from __future__ import annotations

import functools
import glob
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

#: Packages whose versions a fingerprint records (distribution names).
PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "optuna", "loran-search")

#: CPU flags that choose the math kernels (x86 and Arm spellings of ``/proc/cpuinfo``).
KERNEL_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
    "asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm",
)  # fmt: skip

#: The fields whose difference can change a trial's numbers (compared on resume).
COMPARED_KEYS = (
    "cpu_model", "cpu_flags", "cores", "machine", "gpus", "torch", "transformers", "peft",
    "bitsandbytes",
)  # fmt: skip

#: The order fields are shown in (``loran-search env``, the report).
SHOWN_KEYS = (
    "cpu_model", "cpu_flags", "cores", "machine", "gpus", "os", "python", "torch",
    "transformers", "peft", "bitsandbytes", "optuna", "loran_search", "compute_dtype",
    "quantization", "threads", "deterministic", "device",
)  # fmt: skip


def _cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str | None, set[str]]:
    """The first ``model name`` and the union of ``flags``/``Features`` lines of cpuinfo."""
    model: str | None = None
    flags: set[str] = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and model is None:
                    model = value.strip() or None
                elif key in ("flags", "features"):
                    flags.update(value.split())
    except OSError:
        pass
    return model, flags


def _gpus(pattern: str = "/proc/driver/nvidia/gpus/*/information") -> str:
    """The NVIDIA GPUs' model names, ``", "``-joined (the driver's files; no CUDA call)."""
    names = []
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "model":
                        names.append(value.strip())
                        break
        except OSError:
            continue
    return ", ".join(names)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_fingerprint(cpuinfo: str = "/proc/cpuinfo") -> dict[str, Any]:
    """The machine and the installed stack, without importing torch (module docstring).

    Read once per process and ``cpuinfo`` (a copy is returned).

    Args:
        cpuinfo: The cpuinfo file to read (tests pass another).
    """
    return dict(_machine(cpuinfo))


@functools.lru_cache(maxsize=4)
def _machine(cpuinfo: str) -> dict[str, Any]:
    model, flags = _cpuinfo(cpuinfo)
    out: dict[str, Any] = {
        "cpu_model": model or platform.processor() or "unknown",
        "cpu_flags": " ".join(f for f in KERNEL_FLAGS if f in flags),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "gpus": _gpus(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
    }
    for dist in PACKAGES:
        out[dist.replace("-", "_")] = _version(dist)
    return out


def runtime_fields() -> dict[str, Any]:
    """``threads``, ``deterministic`` and ``device`` from torch when it is loaded, else ``None``.

    Torch is not imported here: a worker has loaded it by the time it trains.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {"threads": None, "deterministic": None, "device": None}
    device = "cpu"
    try:
        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(torch.cuda.current_device())
    except Exception:  # a broken CUDA install: the device stays unknown, not a failure
        device = None
    return {
        "threads": int(torch.get_num_threads()),
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
        "device": device,
    }


def trial_fingerprint(
    *, compute_dtype: str | None = None, quantization: str | None = None
) -> dict[str, Any]:
    """The fingerprint a trial records: :func:`machine_fingerprint` plus the training setup.

    Args:
        compute_dtype: ``model.compute_dtype`` of the study.
        quantization: ``model.quantization`` of the study.
    """
    return {
        **machine_fingerprint(),
        "compute_dtype": compute_dtype,
        "quantization": quantization,
        **runtime_fields(),
    }


def differences(
    stored: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str] = COMPARED_KEYS
) -> list[str]:
    """What differs between two fingerprints, one ``key: 'old' → 'new'`` per field.

    A field missing from either side is not compared (an older fingerprint lacks it).
    """
    out = []
    for key in keys:
        if key not in stored or key not in current:
            continue
        old, new = stored[key], current[key]
        if old != new:
            out.append(f"{key}: {_show(old)} → {_show(new)}")
    return out


def _show(value: Any) -> str:
    return "none" if value in (None, "") else repr(value) if isinstance(value, str) else str(value)


def resume_warning(
    fingerprints: Mapping[int, Mapping[str, Any]], current: Mapping[str, Any]
) -> str | None:
    """The warning ``run`` prints when a study's trials ran on a differently fingerprinted machine.

    Args:
        fingerprints: ``{trial number: recorded fingerprint}`` of the study's trials.
        current: This machine's :func:`machine_fingerprint`.

    Returns:
        ``None`` when every recorded fingerprint matches on :data:`COMPARED_KEYS` (or none was
        recorded), else a paragraph naming the trials and what differs.
    """
    by_diff: dict[tuple[str, ...], list[int]] = {}
    for number, fp in sorted(fingerprints.items()):
        diff = tuple(differences(fp, current))
        if diff:
            by_diff.setdefault(diff, []).append(number)
    if not by_diff:
        return None
    lines = [
        "loran-search: warning: this study's earlier trials ran on a machine whose environment "
        "differs from this one, so their numbers may not be reproducible here (bf16 and other "
        "kernels differ between CPUs; see README, 'What is deterministic'):"
    ]
    for diff, numbers in by_diff.items():
        shown = ", ".join(str(n) for n in numbers[:12]) + (" …" if len(numbers) > 12 else "")
        lines.append(f"  trials {shown}: " + "; ".join(diff))
    lines.append(
        "  Trials run here record this machine's fingerprint; the report's Environment block "
        "lists every machine the study ran on."
    )
    return "\n".join(lines)


def render_text(fp: Mapping[str, Any]) -> str:
    """``key: value`` lines in :data:`SHOWN_KEYS` order, then any other field."""
    keys = [k for k in SHOWN_KEYS if k in fp] + [k for k in fp if k not in SHOWN_KEYS]
    width = max((len(k) for k in keys), default=0)
    return "\n".join(f"{k.ljust(width)}  {_plain(fp[k])}" for k in keys)


def _plain(value: Any) -> str:
    return "—" if value in (None, "") else str(value)
