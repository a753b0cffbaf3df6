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
process in paired rounds (:mod:`loran_search.bench_rounds`: each round runs every variant once,
in rotated order, after one untimed warm-up round; a time ratio is taken within each round and
reported as the median with its min–max range over the rounds) — and the peak memory of a
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
``<base>.loran/reference`` are step-time ratios (the median of the round-by-round ratios; the
``spread`` object holds each time ratio's ``{"low", "high", "rounds"}``: the min and max of the
round-by-round ratios and their count), ``<base>.memory.loran/lora`` is the
``step_peak_mb`` ratio, for ``base`` in ``fp32``, ``nf4``; ``<base>.<peer>/lora`` and
``<base>.memory.<peer>/lora`` for every peer the base supports, and ``<base>.loran/hira``; plus
``merged/base``. Memory ratios are one measurement each (a step's memory does not depend
on the machine's load: two runs agree within ±0.01) and have no ``spread`` entry.

Rounds: :data:`DEFAULT_ROUNDS` counted rounds after :data:`WARMUP_ROUNDS` warm-up round by
default (``--rounds N``; ``--quick``: :data:`QUICK_ROUNDS`). One training step of the full shape
takes 3.6–4.3 s on one thread of this project's 2-core AMD EPYC machine when it is otherwise
idle (measured, all eleven variants), so a round of both bases takes about 45 s and the default
run about 9 minutes; with the cores shared (load average 4–6) it took 19–21 minutes (README,
"Measured").
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from loran_search.bench_rounds import Timer, environment, load_average, ratio_spread, run_rounds

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
)
DEFAULT_ROUNDS = 8
"""Counted rounds of a full run (``--rounds``); see the module docstring for the duration."""
QUICK_ROUNDS = 3
WARMUP_ROUNDS = 1
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

    def step(self) -> None:
        loss = self.model(input_ids=self.ids, labels=self.ids).loss
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


# --- measurements -------------------------------------------------------------------------
def measure_steps(
    shape: Shape,
    base: str,
    variants: tuple[str, ...] = VARIANTS,
    *,
    rounds: int = DEFAULT_ROUNDS,
    warmup: int = WARMUP_ROUNDS,
    timer: Timer = time.perf_counter,
) -> dict[str, list[float]]:
    """Step times of the variants in paired rounds (:func:`~loran_search.bench_rounds.run_rounds`).

    Returns ``{variant: [t_1, …, t_R]}``, index ``r`` = counted round ``r``.
    """
    ids = _batch(shape)
    trainers = {v: _Trainer(build_variant(shape, base, v), ids) for v in variants}
    times = run_rounds({v: t.step for v, t in trainers.items()}, rounds, warmup=warmup, timer=timer)
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


def _probe_jobs() -> int:
    """Memory probes run at once: 2, or 1 on a one-CPU machine.

    A probe's peak is its own process's resident set, which does not depend on what else runs,
    so two probes can share a 2-core machine (the timed rounds never run beside them).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 2 if cpus >= 2 else 1


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


def measure_merged(
    shape: Shape,
    *,
    rounds: int = DEFAULT_ROUNDS,
    warmup: int = WARMUP_ROUNDS,
    timer: Timer = time.perf_counter,
) -> dict[str, list[float]]:
    """Inference forwards of the bare fp32 base and the merged LoRAN model, in paired rounds."""
    import torch

    ids = _batch(shape, seed=1)
    bare = _base_model(shape, "fp32").eval()
    merged = build_variant(shape, "fp32", "loran").merge_and_unload().eval()
    models = {"base": bare, "merged": merged}

    def forward(name: str) -> Any:
        def run() -> None:
            with torch.no_grad():
                models[name](input_ids=ids)

        return run

    return run_rounds({k: forward(k) for k in models}, rounds, warmup=warmup, timer=timer)


def _ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``; ``None`` when a value is missing or either is not positive.

    (A ``--quick`` step may need no new memory at all: too small to measure, on either side.)
    """
    if num is None or den is None or not den > 0 or not num > 0:
        return None
    return num / den


def time_ratio_pairs(variants: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """``(ratio key suffix, numerator, denominator)`` of the step-time ratios of one base."""
    pairs = [("loran/lora", "loran", "lora"), ("loran/reference", "loran", "loran_reference")]
    pairs += [(f"{p}/lora", p, "lora") for p in PEERS if p in variants]
    if "hira" in variants:
        pairs.append(("loran/hira", "loran", "hira"))
    return pairs


def run_bench(
    quick: bool = False,
    *,
    rounds: int | None = None,
    warmup: int = WARMUP_ROUNDS,
    timer: Timer = time.perf_counter,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole adapter benchmark and return the JSON-ready result.

    Args:
        quick: The small shape (a smoke check).
        rounds: Counted rounds per timed comparison (default :data:`DEFAULT_ROUNDS`, or
            :data:`QUICK_ROUNDS` with ``quick``).
        warmup: Untimed rounds before them.
        timer: The clock of the timed rounds (a fake one in tests).
        progress: Say what runs on stderr.

    Raises:
        ValueError: ``rounds < 1`` or ``warmup < 0``.
    """
    import torch

    from loran_search.quant import silence_bitsandbytes_noise

    n_rounds = rounds if rounds is not None else (QUICK_ROUNDS if quick else DEFAULT_ROUNDS)
    if n_rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be at least 1 and warmup at least 0: {n_rounds}, {warmup}.")
    silence_bitsandbytes_noise()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    torch.set_num_threads(1)
    shape = QUICK if quick else FULL
    env = environment()
    started = time.monotonic()

    def say(msg: str) -> None:
        if progress:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    ratios: dict[str, float | None] = {}
    spread: dict[str, dict[str, float | int]] = {}

    def put(key: str, times: dict[str, list[float]], num: str, den: str) -> None:
        s = ratio_spread(times, num, den)
        ratios[key] = None if s is None else s.median
        if s is not None:
            spread[key] = s.as_json()

    unsupported = {base: peer_problems(base) for base in BASES}
    for base in BASES:
        variants = variants_of(base)
        say(f"{base}: timing {', '.join(variants)} ({warmup} warm-up + {n_rounds} paired rounds)")
        times = measure_steps(shape, base, variants, rounds=n_rounds, warmup=warmup, timer=timer)
        results[base] = {
            v: {"step_s": statistics.median(times[v]), "steps_s": times[v]} for v in variants
        }
        for suffix, num, den in time_ratio_pairs(variants):
            put(f"{base}.{suffix}", times, num, den)
    say(f"merged inference ({warmup} warm-up + {n_rounds} paired rounds)")
    merged = measure_merged(shape, rounds=n_rounds, warmup=warmup, timer=timer)
    merged_res = {
        k: {"forward_s": statistics.median(v), "forwards_s": v} for k, v in merged.items()
    }
    put("merged/base", merged, "merged", "base")

    probes = [(base, v) for base in BASES for v in results[base]]
    jobs = _probe_jobs()
    say(f"memory of {len(probes)} variants (a fresh subprocess each, {jobs} at a time)")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        mems = list(pool.map(lambda bv: _probe_subprocess(quick, *bv), probes))
    for (base, v), mem in zip(probes, mems, strict=True):
        results[base][v].update(mem)
    for base in BASES:
        r = results[base]
        for v in ("loran", *(p for p in PEERS if p in r)):
            ratios[f"{base}.memory.{v}/lora"] = _ratio(
                r[v]["step_peak_mb"], r["lora"]["step_peak_mb"]
            )

    checks = {
        k: (ratios[k] is not None and ratios[k] <= t)
        for k, t in TARGETS.items()
        if t == t  # NaN: no target
    }
    env["load_average"]["end"] = load_average()
    return {
        "shape": asdict(shape),
        "quick": quick,
        "threads": torch.get_num_threads(),
        "rounds": n_rounds,
        "warmup_rounds": warmup,
        "activation": {"name": "sinter", "params": SINTER},
        "results": results,
        "unsupported": unsupported,
        "merged": merged_res,
        "ratios": ratios,
        "spread": spread,
        "targets": {k: v for k, v in TARGETS.items() if v == v},
        "meets_targets": checks,
        "environment": env,
        "wall_s": round(time.monotonic() - started, 1),
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
