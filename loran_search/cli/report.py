"""``loran-search report (FILE | --storage URL --study NAME) [--out DIR] [--format …]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loran_search.cli._args import add_command, add_import
from loran_search.errors import EXIT_OK, UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``report``."""
    p = add_command(sub, "report", "loran_search.cli.report:cmd_report", "analyse a study")
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
    add_import(p)


def study_from_file(path: str) -> tuple[str, str, str | None]:
    """``(storage, study name, artifact dir)`` of a study YAML (checked by the loader).

    Raises:
        UsageError: No file at ``path``.
        ConfigError: The file is not a valid study (exit 2, with every problem listed).
    """
    if not Path(path).is_file():
        raise UsageError(
            f"No study file at {path}. Pass a study YAML, or --storage URL --study NAME."
        )
    from loran_search.search.validate import load_config

    cfg = load_config(path, environment=False)  # reading a storage needs no device or data
    return cfg.study.storage, cfg.study.name, cfg.study.artifacts


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of a study (handler of ``loran-search report``)."""
    from loran_search.analysis.api import ReportError, write_report

    artifacts: str | None = None
    if args.file:
        storage, name, artifacts = study_from_file(args.file)
        storage = args.storage or storage
        name = args.study or name
    else:
        if not (args.storage and args.study):
            raise UsageError(
                "Say which study to report: `loran-search report FILE` (a study YAML) or "
                "`loran-search report --storage URL --study NAME`."
            )
        storage, name = args.storage, args.study
    from loran_search.cli.study import report_dir

    out = Path(args.out) if args.out else report_dir(name)
    messages: list[str] = []
    analysis: list[Any] = []
    try:
        write_report(
            storage=storage,
            study_name=name,
            out_dir=out,
            formats=args.format,
            dashboard=not getattr(args, "no_dashboard", False),
            artifact_dir=artifacts,
            messages=messages,
            analysis_out=analysis,
        )
    except ReportError as err:
        raise UsageError(str(err)) from None
    from loran_search.analysis.render import summary_markdown

    print(summary_markdown(analysis[0]))
    for line in messages:
        print(line, file=sys.stderr)
    return EXIT_OK
