"""Argument helpers shared by the sub-command groups (standard library only: start-up is fast)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_command(
    parent: argparse._SubParsersAction, name: str, handler: str, help_: str
) -> argparse.ArgumentParser:
    """Add sub-command ``name`` whose handler is ``"module:function"`` (imported when it runs)."""
    p = parent.add_parser(name, help=help_, description=help_)
    p.set_defaults(handler=handler)
    return p


def add_import(p: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable): modules whose ``@register_activation`` calls run first."""
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first so its @register_activation calls run (repeatable)",
    )


def add_set(p: argparse.ArgumentParser, what: str) -> None:
    """``--set KEY=VALUE`` (repeatable)."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override {what} (repeatable), e.g. --set sinter.amplitude=1e-3",
    )


def add_format(p: argparse.ArgumentParser, choices: Sequence[str], default: str) -> None:
    """``--format`` with a fixed set of choices."""
    p.add_argument("--format", choices=list(choices), default=default, help=f"default {default}")
