"""``loran-search env``: the environment fingerprint and versions, to paste into a bug report.

It prints what every trial records (:mod:`loran_search.environment`): CPU model and kernel
flags, cores, GPUs, OS, Python and the versions of torch, transformers, peft, bitsandbytes,
optuna and loran-search, read from package metadata without importing them (fast). ``--torch``
also imports torch for its thread count, deterministic-algorithms setting and device.
"""

from __future__ import annotations

import argparse
import json

from loran_search.cli._args import add_command, add_format

_HERE = "loran_search.cli.env"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``env``."""
    p = add_command(
        sub,
        "env",
        f"{_HERE}:cmd_env",
        "print this machine's environment fingerprint and package versions (for bug reports)",
    )
    add_format(p, ("text", "json"), "text")
    p.add_argument(
        "--torch",
        action="store_true",
        help="import torch for its threads, deterministic setting and device (slower)",
    )


def cmd_env(args: argparse.Namespace) -> int:
    """Print :func:`loran_search.environment.machine_fingerprint` (``--torch``: runtime too)."""
    from loran_search.environment import machine_fingerprint, render_text, runtime_fields

    fp = machine_fingerprint()
    if args.torch:
        import torch  # noqa: F401  (runtime_fields reads it from sys.modules)

        fp.update(runtime_fields())
    if args.format == "json":
        print(json.dumps(fp, indent=1))
    else:
        print(render_text(fp))
    return 0
