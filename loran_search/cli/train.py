"""``loran-search train FILE``: one fine-tuning run of the study's first configuration."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from loran_search.cli._args import add_command, add_format, add_import, add_set
from loran_search.errors import UsageError

if TYPE_CHECKING:
    from loran_search.train import RunResult


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train``."""
    p = add_command(
        sub, "train", "loran_search.cli.train:cmd_train", "one fine-tuning run, no search"
    )
    p.add_argument("file", metavar="FILE", help="study YAML")
    add_set(p, "any config key, e.g. --set training.max_steps=20")
    p.add_argument("--seed", type=int, default=None, help="default: the study's first seed")
    p.add_argument("--save-adapter", metavar="DIR", help="save the trained adapter here")
    add_format(p, ("table", "json"), "table")
    add_import(p)


def format_table(result: RunResult) -> str:
    """A short human-readable summary of a run."""
    r = result
    lines = [
        f"status: {r.status}"
        + (f" (at step {r.stability['diverged_at_step']})" if r.stability["diverged"] else ""),
        "run: " + ", ".join(f"{k}={v}" for k, v in r.run.items()),
    ]
    if r.zero_shot is not None:
        lines.append("zero-shot: " + ", ".join(f"{k}={v:.4f}" for k, v in r.zero_shot.items()))
    if r.metrics:
        lines.append("metrics:   " + ", ".join(f"{k}={v:.4f}" for k, v in r.metrics.items()))
    st = r.stability
    ftl = st["final_train_loss"]
    lines.append(
        f"stability: grad_norm_max={st['grad_norm_max']:.4g}, loss_spikes={st['loss_spikes']}, "
        f"final_train_loss={'n/a' if ftl is None else f'{ftl:.4f}'}"
    )
    c = r.cost
    lines.append(
        f"cost: {c['train_seconds']:.1f} s training ({c['seconds_per_step']:.3f} s/step), "
        f"{c['eval_seconds']:.1f} s eval, peak memory {c['peak_memory_mb']} MB "
        f"({c['peak_memory_kind']}), {c['trainable_params']:,} trainable params"
    )
    tr = r.data.get("truncation", {})
    if tr:
        lines.append(
            f"truncation (max_length={r.data.get('max_length')}): "
            f"train inputs {tr['train_inputs']}/{tr['n_train']}, train targets "
            f"{tr['train_targets']}, eval inputs {tr['eval_inputs']}/{tr['n_eval']}, "
            f"eval targets {tr['eval_targets']}"
        )
    if r.adapter_path:
        lines.append(f"adapter: {r.adapter_path}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    """``loran-search train FILE [--set k=v …] [--seed N] [--save-adapter DIR] [--format …]``.

    Runs the study's first configuration once (see
    :meth:`loran_search.search.space.SearchSpace.first_configuration`). A diverged run is a
    result: it is printed and the exit code is 0. Configuration, task, model and training
    errors derive from :class:`~loran_search.errors.LoranSearchError`: the command layer
    prints them.
    """
    from loran_search.search.space import build_space
    from loran_search.search.validate import load_config
    from loran_search.train import run_training

    try:
        cfg = load_config(args.file, list(args.overrides or ()))
    except OSError as err:
        raise UsageError(f"cannot read {args.file}: {err}") from err
    seed = args.seed if args.seed is not None else (cfg.study.seeds or [0])[0]
    first = build_space(cfg).first_configuration()
    result = run_training(
        cfg,
        activation=first.activation,
        activation_params=first.activation_params,
        rank=first.rank,
        seed=int(seed),
        training_overrides=first.training_overrides,
        adapter_dir=args.save_adapter,
        progress=args.format == "table" or sys.stderr.isatty(),
    )
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result))
    return 0
