"""``loran-search train FILE``: one fine-tuning run of the study's first configuration."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
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


def save_adapter_problem(target: str) -> str | None:
    """Why ``--save-adapter DIR`` could not be written after training, or ``None``.

    The adapter is saved only at the end of a run, so this is checked before it: ``DIR`` may
    be an existing folder (its adapter files are replaced) or a new path whose nearest existing
    parent is a writable folder.
    """
    path = Path(target).expanduser()
    if path.exists() and not path.is_dir():
        return (
            "That is an existing file, not a folder; the adapter is a folder of files. Choose a "
            "new or existing folder path."
        )
    parent = path if path.exists() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so no folder can be created below it. Choose another path."
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable. Choose another path."
    return None


def cmd_train(args: argparse.Namespace) -> int:
    """``loran-search train FILE [--set k=v …] [--seed N] [--save-adapter DIR] [--format …]``.

    Runs the study's first configuration once (see
    :meth:`loran_search.search.space.SearchSpace.first_configuration`). A diverged run is a
    result: it is printed and the exit code is 0. Configuration, task, model and training
    errors derive from :class:`~loran_search.errors.LoranSearchError`: the command layer
    prints them.
    """
    from loran_search.config import SEED_MAX, ConfigError
    from loran_search.console import RunLabel, run_label
    from loran_search.search.space import build_space
    from loran_search.search.validate import load_config
    from loran_search.train import run_training

    problems: list[tuple[str, str]] = []  # the command line's, reported with the file's
    if args.save_adapter is not None:
        problem = save_adapter_problem(args.save_adapter)
        if problem:
            problems.append((f"--save-adapter {args.save_adapter}", problem))
    if args.seed is not None and not 0 <= args.seed <= SEED_MAX:
        problems.append(
            (f"--seed {args.seed}", f"Outside 0 … 2³² − 1 ({SEED_MAX}), which numpy accepts.")
        )
    try:
        cfg = load_config(args.file, list(args.overrides or ()))
    except OSError as err:
        raise UsageError(f"cannot read {args.file}: {err}") from err
    except ConfigError as err:
        raise ConfigError([*err.errors, *problems]) from None
    if problems:
        raise ConfigError(problems)
    seed = args.seed if args.seed is not None else (cfg.study.seeds or [0])[0]
    first = build_space(cfg).first_configuration()
    with run_label(RunLabel(trial=None, phase="train", seed=int(seed))):
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
