"""The ``loran-search`` command: the one command layer of the project.

Start-up is kept fast: this package imports only the standard library (and the stdlib-only
:mod:`loran_search.errors`). Each sub-command group lives in its own module
(:mod:`.activations`, :mod:`.assets`, :mod:`.train`, :mod:`.study` for run/worker/validate/
dashboard, :mod:`.report`, :mod:`.bench`, :mod:`.env`), which adds its parsers in
``register(sub)`` and holds its handlers (:mod:`._examples` gives every ``--help`` examples);
a handler is named ``"module:function"`` and its module (and torch, transformers, peft,
optuna, ...) is imported only when that sub-command runs. A handler takes the parsed
``argparse.Namespace`` and returns the process exit code.

Nothing outside ``loran_search.cli`` imports it. Errors are mapped to exit codes in one place,
:func:`exit_code_for`: every :class:`~loran_search.errors.LoranSearchError` carries its own
(0 success, 1 a run-time failure, 2 bad input, 130 Ctrl-C, 143 SIGTERM), and
:class:`activations.ActivationError` (the registry is independent of this package) is bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from loran_search.cli import activations, assets, bench, env, report, study, train
from loran_search.cli._examples import add_examples
from loran_search.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    LoranSearchError,
    UsageError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "build_parser",
    "exit_code_for",
    "main",
]

_GROUPS = (activations, assets, train, study, report, bench, env)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; every sub-command's handler is stored in ``handler``."""
    parser = argparse.ArgumentParser(
        prog="loran-search",
        description=(
            "Activation-design search for LoRAN (ΔW = s·f(B·A)) fine-tuning on quantized "
            "LLaMA-family models."
        ),
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.register(sub)
    add_examples(parser)  # every sub-command's --help ends with examples
    return parser


def _version() -> str:
    from loran_search import __version__

    return f"loran-search {__version__}"


def _resolve(handler: str) -> Callable[[argparse.Namespace], int]:
    module, _, func = handler.partition(":")
    return getattr(importlib.import_module(module), func)


def _load_plugins(modules: Sequence[str]) -> None:
    """Import ``--import`` modules; one that raises is bad input naming the module, not a crash."""
    from loran_search.activations import ActivationError, load_plugins

    for module in modules:
        try:
            load_plugins([module])
        except ActivationError:
            raise
        except Exception as err:
            raise UsageError(
                f"--import {module}: importing it raised {type(err).__name__}: {err}.",
                fix="Fix the module (run `python -c 'import "
                f"{module}'` to see the traceback) or drop the --import.",
            ) from err


def exit_code_for(err: BaseException) -> int | None:
    """The exit code of an error shown without a traceback, or ``None`` for a real crash."""
    if isinstance(err, LoranSearchError):
        return err.exit_code
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    act = sys.modules.get("loran_search.activations")  # the registry, if anything imported it
    if act is not None and isinstance(err, act.ActivationError):
        return EXIT_BAD_INPUT
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loran-search`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "imports", None):
            _load_plugins(args.imports)
        return int(_resolve(args.handler)(args) or 0)
    except (Exception, KeyboardInterrupt) as err:
        code = exit_code_for(err)
        if code is None:
            raise
        if isinstance(err, KeyboardInterrupt) and not str(err):
            print("loran-search: interrupted.", file=sys.stderr)
        else:
            print(f"loran-search: error: {err}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
