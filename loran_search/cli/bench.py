"""``loran-search bench adapter | kinds | storage``: ratios measured side by side in one run."""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

from loran_search.cli._args import add_command, add_format
from loran_search.errors import UsageError
from loran_search.words import count, plural

_HERE = "loran_search.cli.bench"

_SPREAD_NOTE = textwrap.fill(
    "Timing in paired rounds: each round runs every variant once, in an order rotated by one "
    "place per round, after untimed warm-up rounds. A time ratio is taken within each round "
    "and reported as the median over the rounds, with the range [min, max] of the round "
    "ratios and the number of rounds. With R independent rounds, [min, max] covers the true "
    "median ratio with probability 1 - 2^(1-R) (0.99 for R = 8); a ratio whose range holds 1 "
    "does not tell the two variants apart, and two runs agree where their ranges overlap.",
    width=92,
)
_ADAPTER_HELP = f"""LoRAN, its naive formulation and the peers (DoRA, HiRA, PEANuT) against LoRA.

A LLaMA-shaped model (hidden 1024, 4 layers, seq 512 x batch 2, q_proj+v_proj r=64, one
thread) on a float32 and an NF4 base; training-step times, step peak memory (a fresh
subprocess per variant; memory ratios are one measurement each, no spread), and the merged
model's inference forward.

{_SPREAD_NOTE}

JSON: `ratios` holds the medians, `spread` holds {{"low", "high", "rounds"}} per time ratio.

Duration: the default run (8 rounds after 1 warm-up round) takes about 9 min on this project's
2-core AMD EPYC machine when it is otherwise idle (estimated from a full-shape step measured
idle there, 3.6-4.3 s on one thread, x 11 variants x 9 rounds, plus builds and the memory
probes); measured: 20.9 and 19.6 min with the cores shared (load average 4-6). --quick: a tiny
shape, about 2 min (the probes' imports)."""
_KINDS_HELP = f"""LoRAN (Sinter) against LoRA, one training step, for every model kind.

Random weights at small shapes (the embedded networks at their real size), rank 4.

{_SPREAD_NOTE}

JSON: {{"rounds", "warmup_rounds", "environment", "wall_s", "rows"}}; a row's `loran/lora` is
the median, its `spread` holds {{"loran/lora": {{"low", "high", "rounds"}}}}.

Duration: the default run (30 rounds after 3 warm-up rounds) took 19 s on this project's 2-core
machine with the cores shared (load average 4)."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``bench adapter | kinds | storage``."""
    bench = sub.add_parser("bench", help="benchmarks (ratios measured side by side)")
    bench_sub = bench.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add_command(
        bench_sub,
        "adapter",
        f"{_HERE}:cmd_bench_adapter",
        "LoRAN and peers vs LoRA: paired step-time rounds, median ratio with its min-max range",
    )
    p.description = _ADAPTER_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_format(p, ("table", "json"), "table")
    p.add_argument("--quick", action="store_true", help="a smaller shape, for a smoke check")
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        metavar="N",
        help="counted paired rounds per comparison (default 8, --quick 3); each round runs every "
        "variant once, after 1 untimed warm-up round; more rounds: a steadier median (the range, "
        "the min-max of the round ratios, does not shrink)",
    )
    p = add_command(
        bench_sub,
        "kinds",
        f"{_HERE}:cmd_bench_kinds",
        "LoRAN vs LoRA per model kind: paired step rounds, median ratio with its min-max range",
    )
    p.description = _KINDS_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_format(p, ("table", "json"), "table")
    p.add_argument(
        "--rounds",
        "--repeats",
        dest="rounds",
        type=int,
        default=30,
        metavar="N",
        help="counted paired rounds per kind (default 30, after 3 untimed warm-up rounds); "
        "--repeats is the old name",
    )
    p = add_command(bench_sub, "storage", f"{_HERE}:cmd_bench_storage", "storage overhead")
    p.add_argument("--storage", action="append", metavar="URL", help="storages to compare")
    p.add_argument("--trials", type=int, default=200)
    add_format(p, ("table", "json"), "table")


def _mb(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _spread_cell(spread: dict[str, Any] | None) -> str:
    """``"  0.981–1.102      8"``: the round ratios' range and count; ``"-"``: one measurement."""
    if not spread:
        return f"{'-':>15} {'-':>6}"
    return f"{spread['low']:>7.3f}–{spread['high']:<7.3f} {spread['rounds']:>6}"


def environment_line(env: dict[str, Any] | None) -> str:
    """One line: CPU, cores, torch and its threads, load averages at the start and end."""
    if not env:
        return "environment: unknown"
    load = env.get("load_average") or {}

    def fmt(v: list[float] | None) -> str:
        return "?" if not v else "/".join(f"{x:.2f}" for x in v)

    return (
        f"environment: {env.get('cpu_model')}, {env.get('usable_cpus')} of {env.get('cores')} "
        f"CPUs usable, torch {env.get('torch')} on {env.get('threads')} "
        f"{plural(env.get('threads'), 'thread')}, "
        f"Python {env.get('python')}; load average (1/5/15 min) {fmt(load.get('start'))} at the "
        f"start, {fmt(load.get('end'))} at the end"
    )


def format_table(res: dict[str, Any]) -> str:
    """The human-readable report of :func:`run_bench`."""
    s = res["shape"]
    lines = [
        f"LLaMA-shaped model: hidden {s['hidden']}, intermediate {s['intermediate']}, "
        f"{s['layers']} layers, {s['heads']} heads, vocab {s['vocab']}, seq {s['seq']} x batch "
        f"{s['batch']}; q_proj+v_proj r={s['rank']}; float32; {count(res['threads'], 'thread')}; "
        f"{res['rounds']} paired rounds after {count(res['warmup_rounds'], 'warm-up round')}.",
        environment_line(res.get("environment")),
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
        f"{m['merged']['forward_s']:.3f} s (medians)",
        "",
        f"{'ratio':<26} {'median':>7} {'range (min–max)':^15} {'rounds':>6} {'target':>8}",
    ]
    spread = res.get("spread", {})
    for k, v in res["ratios"].items():
        t = res["targets"].get(k)
        tt = f"<= {t:.2f}" if t is not None else "-"
        if v is None:
            lines.append(f"{k:<26} {'n/a':>7} {_spread_cell(None)} {tt:>8}  (too small to measure)")
            continue
        verdict = "" if t is None else ("  ok" if v <= t else "  MISSED")
        lines.append(f"{k:<26} {v:>7.3f} {_spread_cell(spread.get(k))} {tt:>8}{verdict}")
    lines += [
        "",
        "Time ratios: median of the round-by-round ratios, with their min–max range over the "
        "rounds; a range that holds 1 does not tell the two variants apart, and two runs agree "
        "where their ranges overlap. Memory ratios: one measurement each (load does not move "
        "them).",
    ]
    return "\n".join(lines)


def cmd_bench_adapter(args: argparse.Namespace) -> int:
    """``loran-search bench adapter [--format table|json] [--quick] [--rounds N]``."""
    from loran_search.bench import run_bench

    rounds = getattr(args, "rounds", None)
    if rounds is not None and rounds < 1:
        raise UsageError("--rounds must be at least 1 (e.g. --rounds 10).")
    res = run_bench(quick=bool(getattr(args, "quick", False)), rounds=rounds)
    if args.format == "json":
        print(json.dumps(res, indent=2))
    else:
        print(format_table(res))
    return 0


def cmd_bench_kinds(args: argparse.Namespace) -> int:
    """``loran-search bench kinds [--rounds N] [--format table|json]``."""
    from loran_search.bench_kinds import run_bench_kinds

    if args.rounds < 1:
        raise UsageError("--rounds must be at least 1 (e.g. --rounds 30).")
    res = run_bench_kinds(rounds=args.rounds)
    if args.format == "json":
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"{'kind':<14} {'targets':<34} {'params':>8} {'LoRA ms':>9} {'LoRAN ms':>9} "
        f"{'ratio':>6} {'range (min–max)':^15} {'rounds':>6}"
    )
    for r in res["rows"]:
        sp = r["spread"].get("loran/lora")
        ratio = "n/a" if r["loran/lora"] is None else f"{r['loran/lora']:.3f}"
        print(
            f"{r['kind']:<14} {','.join(r['targets'])[:34]:<34} {r['trainable_params']:>8} "
            f"{r['lora_ms']:>9.2f} {r['loran_ms']:>9.2f} {ratio:>6} {_spread_cell(sp)}"
        )
    print(environment_line(res.get("environment")))
    print(
        "(one training step; ms: medians; ratio: median of the round-by-round ratios, range: "
        "their min–max; random weights, small shapes)"
    )
    return 0


def cmd_bench_storage(args: argparse.Namespace) -> int:
    """``loran-search bench storage [--storage URL …] [--trials N] [--format table|json]``."""
    from loran_search.bench_storage import bench

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
