"""``loran-search report (FILE | --storage URL --study NAME) [--out DIR] [--format …]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loran_search.cli import EXIT_OK, CliError


def _study_from_file(path: str) -> tuple[str, str, str | None]:
    """``(storage, study name, artifact dir)`` of a study YAML.

    Uses the project's config loader (``loran_search.config.load_config``) when it exists, else
    reads just ``study.storage`` / ``study.name`` / ``study.artifacts`` from the YAML.
    """
    if not Path(path).is_file():
        raise CliError(
            f"No study file at {path}. Pass a study YAML, or --storage URL --study NAME."
        )
    from loran_search import config

    load = getattr(config, "load_config", None)
    if load is not None:
        try:
            cfg = load(path)
        except getattr(config, "ConfigError", ValueError) as err:
            raise CliError(f"{path}: {err}") from None
        return cfg.study.storage, cfg.study.name, getattr(cfg.study, "artifacts", None)
    import yaml

    try:
        data: Any = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise CliError(f"{path} is not valid YAML: {err}") from None
    study = data.get("study") if isinstance(data, dict) else None
    if not isinstance(study, dict) or not study.get("name"):
        raise CliError(f"{path} has no `study.name`; the report needs the study's name.")
    defaults = config.StudySection()
    return str(study.get("storage", defaults.storage)), str(study["name"]), study.get("artifacts")


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of a study (handler of ``loran-search report``)."""
    from loran_search.analysis.api import ReportError, write_report

    artifacts: str | None = None
    if args.file:
        storage, name, artifacts = _study_from_file(args.file)
        storage = args.storage or storage
        name = args.study or name
    else:
        if not (args.storage and args.study):
            raise CliError(
                "Say which study to report: `loran-search report FILE` (a study YAML) or "
                "`loran-search report --storage URL --study NAME`."
            )
        storage, name = args.storage, args.study
    out = Path(args.out) if args.out else Path("reports") / name
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
        raise CliError(str(err)) from None
    from loran_search.analysis.report import summary_markdown

    print(summary_markdown(analysis[0]))
    for line in messages:
        print(line, file=sys.stderr)
    return EXIT_OK
