"""The ``loran-search`` command.

Start-up is kept fast: this module imports only the standard library. Each sub-command names its
handler as ``"module:function"``; the module (and torch, transformers, peft, optuna, ...) is
imported only when that sub-command runs. A handler takes the parsed ``argparse.Namespace`` and
returns the process exit code.

Exit codes: 0 success, 1 a run-time failure, 2 bad input (usage, config or validation errors),
130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An error to show the user without a traceback; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def _add_import(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first so its @register_activation calls run (repeatable)",
    )


def _add_set(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override {what} (repeatable), e.g. --set sinter.amplitude=1e-3",
    )


def _add_format(p: argparse.ArgumentParser, choices: Sequence[str], default: str) -> None:
    p.add_argument("--format", choices=list(choices), default=default, help=f"default {default}")


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

    def add(
        parent: argparse._SubParsersAction, name: str, handler: str, help_: str
    ) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    # activations ---------------------------------------------------------------------------
    act = sub.add_parser("activations", help="list, audit and plot registered activations")
    act_sub = act.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add(act_sub, "list", "loran_search._cmd_activations:cmd_list", "list the registry")
    p.add_argument("--family", help="only this family")
    p.add_argument("--pattern", help="only names matching this glob, e.g. 'sinter*'")
    _add_format(p, ("table", "json"), "table")
    _add_import(p)
    p = add(
        act_sub,
        "audit",
        "loran_search._cmd_activations:cmd_audit",
        "symbolic audit: f(0), f'(0), Lipschitz bound on an interval, start-at-zero, warnings",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="activations (default: all)")
    p.add_argument("--expr", action="append", default=[], metavar="E", help="audit a formula in x")
    _add_set(p, "a parameter as name.param=value")
    p.add_argument("--interval", default="-1,1", metavar="A,B", help="default -1,1")
    _add_format(p, ("table", "json"), "table")
    _add_import(p)
    p = add(
        act_sub,
        "plot",
        "loran_search._cmd_activations:cmd_plot",
        "plot f and f' side by side (seaborn PNG)",
    )
    p.add_argument("names", nargs="+", metavar="NAME")
    _add_set(p, "a parameter as name.param=value")
    p.add_argument("--interval", default="-1,1", metavar="A,B", help="default -1,1")
    p.add_argument("--out", required=True, metavar="FILE.png")
    _add_import(p)

    # assets --------------------------------------------------------------------------------
    assets = sub.add_parser("assets", help="embedded offline models and datasets")
    assets_sub = assets.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add(assets_sub, "list", "loran_search.assets:cmd_list", "list embedded assets")
    _add_format(p, ("table", "json"), "table")
    p = add(assets_sub, "fetch", "loran_search.assets:cmd_fetch", "build assets into the cache")
    p.add_argument("names", nargs="*", metavar="NAME", help="assets (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even when cached")

    # train / run / worker / validate -------------------------------------------------------
    p = add(sub, "train", "loran_search.train:cmd_train", "one fine-tuning run, no search")
    p.add_argument("file", metavar="FILE", help="study YAML")
    _add_set(p, "any config key, e.g. --set training.max_steps=20")
    p.add_argument("--seed", type=int, default=None, help="default: the study's first seed")
    p.add_argument("--save-adapter", metavar="DIR", help="save the trained adapter here")
    _add_format(p, ("table", "json"), "table")
    _add_import(p)

    p = add(sub, "run", "loran_search.search.cli:cmd_run", "run (or resume) a study")
    p.add_argument("file", metavar="FILE", help="study YAML")
    p.add_argument("--storage", metavar="URL", help="override study.storage")
    p.add_argument("--n-trials", type=int, metavar="N", help="override study.n_trials")
    _add_set(p, "any config key")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    _add_import(p)

    p = add(sub, "worker", "loran_search.search.cli:cmd_worker", "join a study as a worker")
    p.add_argument("file", metavar="FILE", help="study YAML")
    p.add_argument("--storage", required=True, metavar="URL", help="the shared storage")
    p.add_argument("--n-trials", type=int, metavar="N", help="override study.n_trials")
    _add_set(p, "any config key")
    _add_import(p)

    p = add(sub, "validate", "loran_search.search.cli:cmd_validate", "check study files")
    p.add_argument("files", nargs="+", metavar="FILE")
    _add_set(p, "any config key")
    _add_import(p)

    # report / dashboard --------------------------------------------------------------------
    p = add(sub, "report", "loran_search.analysis.cli:cmd_report", "analyse a study")
    p.add_argument("file", nargs="?", metavar="FILE", help="study YAML (or --storage/--study)")
    p.add_argument("--storage", metavar="URL")
    p.add_argument("--study", metavar="NAME")
    p.add_argument("--out", metavar="DIR", help="default reports/<study>")
    p.add_argument(
        "--format",
        action="append",
        choices=["md", "html", "csv", "json"],
        help="limit the outputs (repeatable; default all)",
    )
    p.add_argument("--no-dashboard", action="store_true", help="do not write notes/artifacts")
    _add_import(p)

    p = add(sub, "dashboard", "loran_search.search.cli:cmd_dashboard", "start optuna-dashboard")
    p.add_argument("file", nargs="?", metavar="FILE", help="study YAML (or --storage)")
    p.add_argument("--storage", metavar="URL")
    p.add_argument("--port", type=int, default=8080)

    # bench ---------------------------------------------------------------------------------
    bench = sub.add_parser("bench", help="benchmarks (ratios measured side by side)")
    bench_sub = bench.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add(bench_sub, "adapter", "loran_search.bench:cmd_bench_adapter", "LoRAN vs LoRA")
    _add_format(p, ("table", "json"), "table")
    p.add_argument("--quick", action="store_true", help="a smaller shape, for a smoke check")
    p = add(bench_sub, "storage", "loran_search.bench:cmd_bench_storage", "storage overhead")
    p.add_argument("--storage", action="append", metavar="URL", help="storages to compare")
    p.add_argument("--trials", type=int, default=200)
    _add_format(p, ("table", "json"), "table")
    return parser


def _version() -> str:
    from loran_search import __version__

    return f"loran-search {__version__}"


def _resolve(handler: str) -> Callable[[argparse.Namespace], int]:
    module, _, func = handler.partition(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loran-search`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "imports", None):
            from activations import load_plugins

            load_plugins(args.imports)
        return int(_resolve(args.handler)(args) or 0)
    except CliError as err:
        print(f"loran-search: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print("loran-search: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        from activations import ActivationError

        if isinstance(err, ActivationError):
            print(f"loran-search: error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
