"""Benchmarks: ``loran-search bench adapter`` (LoRAN against LoRA, side by side).

``bench adapter`` builds a LLaMA-shaped model (hidden 1024, intermediate 2816, 4 layers, 16 heads,
vocabulary 1024, sequence 512, batch 2; ``--quick``: a small shape for tests) with random weights,
once with a full-precision (float32) base and once with an NF4 base (double quantization, float32
compute), adapts ``q_proj`` and ``v_proj`` with rank 64 (alpha 16, no dropout) and measures, for
three variants of the adapter:

* ``lora``: peft's LoRA (``peft.LoraConfig``);
* ``loran``: LoRAN with Sinter through :mod:`loran_search.adapters` (fused, recomputing backward);
* ``loran_reference``: the published formulation ``x·Wᵀ + x·s·f(B·A)ᵀ`` under plain autograd
  (same layers and weights; only the forward is replaced),

the time of full training steps (forward, backward, AdamW step) — the variants run in one
process, repetitions interleaved in rotating order, median reported — and the peak memory of a
training step. Memory is measured per variant in a fresh subprocess: with glibc's mmap threshold
pinned (``MALLOC_MMAP_THRESHOLD_``), freed tensors go back to the OS, so the resident set tracks
live tensors; the probe runs a warm-up step, resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), runs one step and reads ``VmHWM``. ``step_peak_mb`` = that peak minus
the resident set just before the step (activations, gradients, transients: what an adapter's
design changes); ``peak_mb`` = the whole process peak. ``tracemalloc`` cannot see torch's
allocations and torch has no CPU peak counter, hence the subprocess.

Merged inference: the bare float32 base model's forward against the same model after
``merge_and_unload`` of a trained-looking LoRAN adapter (``merged/base``; 1.0 means merging leaves
no inference cost).

Peers (issue 13), in the same interleaved run and the same memory probe: ``dora``, ``hira`` and
``peanut``, each built with peft's own tuner (:mod:`loran_search.methods.build`) at the same
rank, alpha and targets, with the initialisation peft gives it (``B = 0``: the step's arithmetic
does not depend on the values). A peer runs on a base only where peft supports it
(:func:`loran_search.methods.method_problems`): PEANuT has no bitsandbytes layer, so it runs on
``fp32`` only and ``results.unsupported`` says why for ``nf4``.

Ratios (``--format json``: the ``ratios`` object): ``<base>.loran/lora`` and
``<base>.loran/reference`` are median step-time ratios, ``<base>.memory.loran/lora`` is the
``step_peak_mb`` ratio, for ``base`` in ``fp32``, ``nf4``; ``<base>.<peer>/lora`` and
``<base>.memory.<peer>/lora`` for every peer the base supports, and ``<base>.loran/hira``; plus
``merged/base``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import types
import warnings
from dataclasses import asdict, dataclass
from typing import Any

TARGETS: dict[str, float] = {
    "fp32.loran/lora": 1.15,
    "fp32.loran/reference": 0.85,
    "fp32.memory.loran/lora": 1.10,
    "nf4.loran/lora": float("nan"),  # no target in the issue; reported
    "nf4.loran/reference": 0.85,
    "nf4.memory.loran/lora": 1.10,
    "merged/base": 1.02,
}
VARIANTS = ("lora", "loran", "loran_reference")
PEERS = ("dora", "hira", "peanut")
BASES = ("fp32", "nf4")
_QUANTIZATION = {"fp32": "none", "nf4": "nf4"}


def peer_problems(base: str) -> dict[str, str]:
    """``{peer: why it cannot run on base}`` for the peers peft does not support there."""
    from loran_search.methods import method_problems

    out = {}
    for peer in PEERS:
        problems = method_problems(peer, quantization=_QUANTIZATION[base])
        if problems:
            out[peer] = " ".join(problems)
    return out


def variants_of(base: str) -> tuple[str, ...]:
    """The variants timed on ``base``: LoRA, LoRAN, its reference, and the supported peers."""
    return VARIANTS + tuple(p for p in PEERS if p not in peer_problems(base))


@dataclass(frozen=True)
class Shape:
    """The benchmark model and batch."""

    hidden: int = 1024
    intermediate: int = 2816
    layers: int = 4
    heads: int = 16
    vocab: int = 1024
    seq: int = 512
    batch: int = 2
    rank: int = 64
    alpha: int = 16
    repeats: int = 5
    merged_repeats: int = 7


FULL = Shape()
QUICK = Shape(
    hidden=64,
    intermediate=176,
    layers=2,
    heads=4,
    vocab=128,
    seq=32,
    batch=2,
    rank=8,
    repeats=3,
    merged_repeats=3,
)
SINTER = {"amplitude": 5e-5, "frequency": 1e4}


# --- models -------------------------------------------------------------------------------
def _base_model(shape: Shape, base: str, seed: int = 0) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from loran_search.quant import quantize_4bit

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        vocab_size=shape.vocab,
        max_position_embeddings=shape.seq,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    if base == "nf4":
        quantize_4bit(model, quant_type="nf4", compute_dtype=torch.float32, double_quant=True)
    return model


def _reference_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """The published LoRAN forward ``x·Wᵀ + x·s·f(B·A)ᵀ`` under plain autograd."""
    import torch

    result = self.base_layer(x, *args, **kwargs)
    result = result.clone()
    for name in self.active_adapters:
        if name not in self.lora_A:
            continue
        a, b = self.lora_A[name].weight, self.lora_B[name].weight
        f = self.loran_activations[name]
        delta = self.scaling[name] * f(b @ a)  # (d_out, d_in), kept by autograd
        result = result + torch.nn.functional.linear(self.lora_dropout[name](x), delta)
    return result


def build_variant(shape: Shape, base: str, variant: str, seed: int = 0) -> Any:
    """One benchmark model: the base (``fp32``/``nf4``) with the ``variant`` adapter, B ≠ 0."""
    import peft
    import torch

    import loran_search.adapters as adapters

    model = _base_model(shape, base, seed)
    common = {
        "r": shape.rank,
        "lora_alpha": shape.alpha,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"],
    }
    if variant == "lora":
        cfg: Any = peft.LoraConfig(**common)
    elif variant in PEERS:
        from loran_search.config import AdapterSection
        from loran_search.methods.build import peft_config

        adapter = AdapterSection(target_modules=["q_proj", "v_proj"], alpha=shape.alpha, dropout=0)
        cfg = peft_config(variant, adapter, shape.rank)
    elif variant in {"loran", "loran_reference"}:
        cfg = adapters.LoranConfig(**common, activation="sinter", activation_params=SINTER)
    else:
        raise ValueError(f"Unknown variant {variant!r}; choose from {VARIANTS + PEERS}.")
    model = peft.get_peft_model(model, cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if hasattr(module, "lora_B") and "default" in getattr(module, "lora_B", {}):
            w = module.lora_B["default"].weight
            with torch.no_grad():
                w.copy_(torch.randn(w.shape, generator=gen) * 1e-3)
            if variant == "loran_reference":
                module.forward = types.MethodType(_reference_forward, module)
    return model


def _batch(shape: Shape, seed: int = 0) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, shape.vocab, (shape.batch, shape.seq), generator=gen)


class _Trainer:
    """One model, its optimizer and a fixed batch; :meth:`step` is one training step."""

    def __init__(self, model: Any, ids: Any) -> None:
        import torch

        self.model = model
        self.ids = ids
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=1e-4)

    def step(self) -> float:
        t0 = time.perf_counter()
        loss = self.model(input_ids=self.ids, labels=self.ids).loss
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0


# --- measurements -------------------------------------------------------------------------
def measure_steps(
    shape: Shape, base: str, variants: tuple[str, ...] = VARIANTS
) -> dict[str, list[float]]:
    """Step times of the variants, interleaved (rotating order), after one warm-up each."""
    ids = _batch(shape)
    trainers = {v: _Trainer(build_variant(shape, base, v), ids) for v in variants}
    for t in trainers.values():
        t.step()
    times: dict[str, list[float]] = {v: [] for v in variants}
    n = len(variants)
    for rep in range(shape.repeats):
        order = variants[rep % n :] + variants[: rep % n]
        for v in order:
            times[v].append(trainers[v].step())
    del trainers
    gc.collect()
    return times


def _read_status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # kB
    raise RuntimeError(f"{field} not found in /proc/self/status")


def memory_probe(shape: Shape, base: str, variant: str) -> dict[str, float]:
    """Peak memory of one training step of one variant (run in a fresh process)."""
    import resource

    trainer = _Trainer(build_variant(shape, base, variant), _batch(shape))
    trainer.step()
    gc.collect()
    before = _read_status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        reset = True
    except OSError:  # not Linux, or not allowed: the process peak is all we get
        reset = False
    trainer.step()
    peak = _read_status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_mb": peak / 1024,
        "step_peak_mb": (peak - before) / 1024 if reset else None,
    }


def _probe_subprocess(quick: bool, base: str, variant: str) -> dict[str, float]:
    env = dict(os.environ)
    env.update(
        {
            "MALLOC_MMAP_THRESHOLD_": "131072",  # large blocks always mmap'ed → freed to the OS
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
    )
    cmd = [sys.executable, "-m", "loran_search.bench", "--probe", base, variant]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"memory probe {base}/{variant} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_merged(shape: Shape) -> dict[str, list[float]]:
    """Inference forward of the bare fp32 base against the merged LoRAN model, interleaved."""
    import torch

    ids = _batch(shape, seed=1)
    bare = _base_model(shape, "fp32").eval()
    merged = build_variant(shape, "fp32", "loran").merge_and_unload().eval()
    models = {"base": bare, "merged": merged}
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for m in models.values():
            m(input_ids=ids)
        for rep in range(shape.merged_repeats):
            order = ("base", "merged") if rep % 2 == 0 else ("merged", "base")
            for k in order:
                t0 = time.perf_counter()
                models[k](input_ids=ids)
                times[k].append(time.perf_counter() - t0)
    return times


def _ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``; ``None`` when a value is missing or the denominator is not positive.

    (A ``--quick`` step may need no new memory at all: too small to measure.)
    """
    if num is None or den is None or not den > 0 or num != num:
        return None
    return num / den


def run_bench(quick: bool = False, *, progress: bool = True) -> dict[str, Any]:
    """Run the whole adapter benchmark and return the JSON-ready result."""
    import torch

    from loran_search.quant import silence_bitsandbytes_noise

    silence_bitsandbytes_noise()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    torch.set_num_threads(1)
    shape = QUICK if quick else FULL

    def say(msg: str) -> None:
        if progress:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    unsupported = {base: peer_problems(base) for base in BASES}
    for base in BASES:
        variants = variants_of(base)
        say(f"{base}: timing {', '.join(variants)} ({shape.repeats} interleaved steps each)")
        times = measure_steps(shape, base, variants)
        results[base] = {}
        for v in variants:
            say(f"{base}: memory of {v} (subprocess)")
            mem = _probe_subprocess(quick, base, v)
            results[base][v] = {
                "step_s": statistics.median(times[v]),
                "steps_s": times[v],
                **mem,
            }
    say("merged inference")
    merged = measure_merged(shape)
    merged_res = {
        k: {"forward_s": statistics.median(v), "forwards_s": v} for k, v in merged.items()
    }

    ratios: dict[str, float | None] = {}
    for base in BASES:
        r = results[base]
        ratios[f"{base}.loran/lora"] = _ratio(r["loran"]["step_s"], r["lora"]["step_s"])
        ratios[f"{base}.loran/reference"] = _ratio(
            r["loran"]["step_s"], r["loran_reference"]["step_s"]
        )
        ratios[f"{base}.memory.loran/lora"] = _ratio(
            r["loran"]["step_peak_mb"], r["lora"]["step_peak_mb"]
        )
        for peer in (p for p in PEERS if p in r):
            ratios[f"{base}.{peer}/lora"] = _ratio(r[peer]["step_s"], r["lora"]["step_s"])
            ratios[f"{base}.memory.{peer}/lora"] = _ratio(
                r[peer]["step_peak_mb"], r["lora"]["step_peak_mb"]
            )
        if "hira" in r:
            ratios[f"{base}.loran/hira"] = _ratio(r["loran"]["step_s"], r["hira"]["step_s"])
    ratios["merged/base"] = _ratio(
        merged_res["merged"]["forward_s"], merged_res["base"]["forward_s"]
    )
    checks = {
        k: (ratios[k] is not None and ratios[k] <= t)
        for k, t in TARGETS.items()
        if t == t  # NaN: no target
    }
    return {
        "shape": asdict(shape),
        "quick": quick,
        "threads": torch.get_num_threads(),
        "activation": {"name": "sinter", "params": SINTER},
        "results": results,
        "unsupported": unsupported,
        "merged": merged_res,
        "ratios": ratios,
        "targets": {k: v for k, v in TARGETS.items() if v == v},
        "meets_targets": checks,
    }


def _probe_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m loran_search.bench")
    p.add_argument("--probe", nargs=2, metavar=("BASE", "VARIANT"), required=True)
    p.add_argument("--quick", action="store_true")
    ns = p.parse_args(argv)
    import torch

    from loran_search.quant import silence_bitsandbytes_noise

    silence_bitsandbytes_noise()
    torch.set_num_threads(1)
    base, variant = ns.probe
    print(json.dumps(memory_probe(QUICK if ns.quick else FULL, base, variant)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_probe_main(sys.argv[1:]))
