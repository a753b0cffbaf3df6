"""``loran-search bench adapter | kinds | storage``: ratios measured side by side in one run."""

from __future__ import annotations

import argparse
import json
from typing import Any

from loran_search.cli._args import add_command, add_format
from loran_search.errors import UsageError

_HERE = "loran_search.cli.bench"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``bench adapter | kinds | storage``."""
    bench = sub.add_parser("bench", help="benchmarks (ratios measured side by side)")
    bench_sub = bench.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add_command(bench_sub, "adapter", f"{_HERE}:cmd_bench_adapter", "LoRAN and peers vs LoRA")
    add_format(p, ("table", "json"), "table")
    p.add_argument("--quick", action="store_true", help="a smaller shape, for a smoke check")
    p = add_command(bench_sub, "kinds", f"{_HERE}:cmd_bench_kinds", "LoRAN vs LoRA per model kind")
    add_format(p, ("table", "json"), "table")
    p.add_argument("--repeats", type=int, default=20, help="measured steps per variant")
    p = add_command(bench_sub, "storage", f"{_HERE}:cmd_bench_storage", "storage overhead")
    p.add_argument("--storage", action="append", metavar="URL", help="storages to compare")
    p.add_argument("--trials", type=int, default=200)
    add_format(p, ("table", "json"), "table")


def _mb(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def format_table(res: dict[str, Any]) -> str:
    """The human-readable report of :func:`run_bench`."""
    s = res["shape"]
    lines = [
        f"LLaMA-shaped model: hidden {s['hidden']}, intermediate {s['intermediate']}, "
        f"{s['layers']} layers, {s['heads']} heads, vocab {s['vocab']}, seq {s['seq']} x batch "
        f"{s['batch']}; q_proj+v_proj r={s['rank']}; float32; {res['threads']} thread(s); "
        f"median of {s['repeats']} interleaved steps.",
        "",
        f"{'base':<5} {'variant':<16} {'step s':>8} {'step peak MB':>13} {'process peak MB':>16}",
    ]
    for base, per in res["results"].items():
        for v, r in per.items():
            lines.append(
                f"{base:<5} {v:<16} {r['step_s']:>8.3f} {_mb(r['step_peak_mb']):>13} "
                f"{r['peak_mb']:>16.1f}"
            )
    for base, why in res.get("unsupported", {}).items():
        for peer, reason in why.items():
            lines.append(f"{base:<5} {peer:<16} not run: {reason}")
    m = res["merged"]
    lines += [
        "",
        f"inference forward: base {m['base']['forward_s']:.3f} s, merged LoRAN "
        f"{m['merged']['forward_s']:.3f} s",
        "",
        f"{'ratio':<26} {'measured':>9} {'target':>8}",
    ]
    for k, v in res["ratios"].items():
        t = res["targets"].get(k)
        tt = f"<= {t:.2f}" if t is not None else "-"
        if v is None:
            lines.append(f"{k:<26} {'n/a':>9} {tt:>8}  (too small to measure)")
            continue
        verdict = "" if t is None else ("  ok" if v <= t else "  MISSED")
        lines.append(f"{k:<26} {v:>9.3f} {tt:>8}{verdict}")
    return "\n".join(lines)


def cmd_bench_adapter(args: argparse.Namespace) -> int:
    """``loran-search bench adapter [--format table|json] [--quick]``."""
    from loran_search.bench import run_bench

    res = run_bench(quick=bool(getattr(args, "quick", False)))
    if args.format == "json":
        print(json.dumps(res, indent=2))
    else:
        print(format_table(res))
    return 0


def cmd_bench_kinds(args: argparse.Namespace) -> int:
    """``loran-search bench kinds [--repeats N] [--format table|json]``."""
    from loran_search.bench_kinds import run_bench_kinds

    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1.")
    rows = run_bench_kinds(repeats=args.repeats)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'kind':<14} {'targets':<34} {'params':>8} {'LoRA ms':>9} {'LoRAN ms':>9} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['kind']:<14} {','.join(r['targets'])[:34]:<34} {r['trainable_params']:>8} "
            f"{r['lora_ms']:>9.2f} {r['loran_ms']:>9.2f} {r['loran/lora']:>6.2f}"
        )
    print("(one training step, median of interleaved repeats; random weights, small shapes)")
    return 0


def cmd_bench_storage(args: argparse.Namespace) -> int:
    """``loran-search bench storage [--storage URL …] [--trials N] [--format table|json]``."""
    from loran_search.search.bench_storage import bench

    if args.trials < 2:
        raise UsageError("--trials must be at least 2.")
    from loran_search.storage import mask_url

    rows = bench(args.storage, args.trials)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'storage':<48} {'1 worker/s':>11} {'2 workers/s':>12} {'ratio':>7}")
    for r in rows:
        if "skipped" in r:
            print(f"{mask_url(r['storage']):<48} skipped: {r['skipped']}")
            continue
        print(
            f"{mask_url(r['storage'])[:48]:<48} {r['one_worker_trials_per_s']:>11.2f} "
            f"{r['two_workers_trials_per_s']:>12.2f} {r['ratio']:>7.2f}"
        )
    print(
        f"(no-op trials through the worker loop, {args.trials} per measurement; ratio = 2 "
        "workers / 1 worker throughput)"
    )
    return 0
