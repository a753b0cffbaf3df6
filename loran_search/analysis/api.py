"""``write_report``: the one call that analyses a study and writes every output."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loran_search.errors import LoranSearchError
from loran_search.storage import StorageMissing, mask_url, open_storage
from loran_search.words import plural

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.storages import BaseStorage

    from loran_search.analysis.model import Analysis


class ReportError(LoranSearchError, ValueError):
    """A report cannot be written: unknown study, missing storage, bad format."""


def open_for_reading(
    url: str | BaseStorage, *, log: Callable[[str], None] | None = None
) -> BaseStorage:
    """The Optuna storage behind ``url`` without ever creating a SQLite or journal file.

    Opened through :func:`loran_search.storage.open_storage` (a leading ``~`` expanded, a cut
    last line of a journal mended, every error naming the URL with its password masked); a
    read-only storage opens for reading. A storage object is returned as it is.

    Args:
        url: Storage URL (``sqlite:///…``, ``journal:…``, ``postgresql://…``, ``mysql://…``)
            or an Optuna storage.
        log: Receives the notes of what was done on the user's behalf (a mended journal);
            default: printed to stderr.

    Raises:
        ReportError: The SQLite or journal file does not exist.
        StorageError: The storage cannot be opened (a
            :class:`~loran_search.errors.LoranSearchError`: exit 2 for bad input, 1 for a
            server that stays unreachable).
    """
    if not isinstance(url, str):
        return url
    try:
        return open_storage(url, heartbeat_interval=None, create=False, writable=False, log=log)
    except StorageMissing as err:
        raise ReportError(str(err)) from None


def load_study(
    storage: str | BaseStorage, study_name: str, *, log: Callable[[str], None] | None = None
) -> optuna.Study:
    """Load ``study_name`` from ``storage``.

    Args:
        storage: Storage URL or object, see :func:`open_for_reading`.
        study_name: The study to load.
        log: Receives the notes of :func:`open_for_reading`.

    Raises:
        ReportError: No such study (the message lists the studies the storage holds), or no
            such SQLite/journal file.
        StorageError: The storage cannot be opened.
    """
    import optuna

    opened = open_for_reading(storage, log=log)
    try:
        return optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        names = optuna.get_all_study_names(storage=opened)
        where = mask_url(storage) if isinstance(storage, str) else type(storage).__name__
        raise ReportError(
            f"Study '{study_name}' is not in {where}. It holds: "
            f"{', '.join(sorted(names)) or 'no study'}. Pass one of those with --study, or the "
            "study YAML that created it."
        ) from None


def load_examples(
    *,
    storage: str | BaseStorage,
    study_name: str,
    trial_number: int,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """The per-example outcomes of one trial, as a tidy table.

    Args:
        storage: Storage URL or object, see :func:`open_for_reading`.
        study_name: The study.
        trial_number: The trial's number (search or confirmation trial alike).
        log: Receives the notes of :func:`open_for_reading`.

    Returns:
        Columns ``seed`` (str), ``example_id`` (str), then the recorded values in their order
        (classification: ``correct``, ``gold_logprob``, ``pred``, ``gold``; summarization:
        ``rouge1``, ``rouge2``, ``rougeL``, ``loss``); one row per (seed, example). Empty (with
        ``seed`` and ``example_id`` columns) when the trial records no per-example outcomes, as
        older records do not.

    Raises:
        ReportError: No such study, storage or trial.
    """
    from loran_search import record as R
    from loran_search.analysis.records import examples_frame

    study = load_study(storage, study_name, log=log)
    for trial in study.get_trials(deepcopy=False):
        if trial.number == trial_number:
            return examples_frame(R.TrialRecord.from_frozen(trial).examples)
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    span = f"{min(numbers)}–{max(numbers)}" if numbers else "none"
    raise ReportError(f"Study '{study_name}' has no trial {trial_number} (its trials: {span}).")


def visited_interval(
    *,
    storage: str | BaseStorage,
    study_name: str,
    log: Callable[[str], None] | None = None,
) -> tuple[tuple[float, float], str]:
    """The interval of ``P = B·A`` a study's runs visited, for showing or auditing ``f``.

    Args:
        storage: Storage URL or object, see :func:`open_for_reading`.
        study_name: The study.
        log: Receives the notes of :func:`open_for_reading`.

    Returns:
        ``((a, b), why)``: ``±`` the largest ``|P|`` of the completed search trials (the rule
        the search screens forms on, :func:`loran_search.record.visited_bound`), or ``(-1, 1)``
        with a sentence saying the study records no mechanism.

    Raises:
        ReportError: No such study or storage.
    """
    from loran_search.analysis.mechanism import visited_interval as from_records
    from loran_search.analysis.records import load_records

    return from_records(load_records(load_study(storage, study_name, log=log)))


def _default_artifact_dir(storage: str | BaseStorage, out: Path) -> Path:
    """The study's artifact directory: the search's default for the URL, else ``out/artifacts``.

    ``loran-search run``/``dashboard`` keep artifacts in ``study.artifacts`` or, unset, in
    ``artifacts/`` next to a SQLite/journal file (``runs/artifacts`` for a server URL); using the
    same directory lets ``loran-search dashboard`` show the report's figures.
    """
    if isinstance(storage, str):
        from loran_search.storage import default_artifact_dir

        try:
            return Path(default_artifact_dir(storage))
        except Exception:  # a URL the storage module cannot place artifacts next to
            pass
    return out / "artifacts"


def write_report(
    *,
    storage: str | BaseStorage,
    study_name: str,
    out_dir: str | Path,
    formats: Collection[str] | None = None,
    dashboard: bool = True,
    artifact_dir: str | Path | None = None,
    correction: str = "holm",
    messages: list[str] | None = None,
    analysis_out: list[Any] | None = None,
) -> Path:
    """Analyse a study and write its report.

    Args:
        storage: Storage URL (``sqlite:///…``, ``journal:…``, ``postgresql://…``) or object.
        study_name: The study to analyse.
        out_dir: Directory for the outputs (created).
        formats: Subset of ``md``, ``html``, ``csv``, ``json``; ``None`` writes all.
        dashboard: Save the summary as the study's note and the figures as study artifacts.
        artifact_dir: Artifact store directory; default: where ``loran-search run`` keeps the
            study's artifacts (``artifacts/`` next to a SQLite/journal file, ``runs/artifacts``
            for a server URL), or ``<out_dir>/artifacts`` for a storage object.
        correction: Multiple-comparison correction, ``holm`` (default) or ``bh``.
        messages: If given, receives one line per written file and dashboard action.
        analysis_out: If given, receives the :class:`~loran_search.analysis.model.Analysis`.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        ReportError: Unknown study, missing storage file, unknown format or correction.
    """
    from loran_search.analysis.report import FORMATS, analyse, write_outputs
    from loran_search.analysis.stats import CORRECTIONS

    chosen = set(formats or FORMATS)
    unknown = sorted(chosen - set(FORMATS))
    if unknown:
        raise ReportError(
            f"Unknown report {plural(len(unknown), 'format')} {', '.join(unknown)}; choose "
            f"from {', '.join(FORMATS)}."
        )
    if correction not in CORRECTIONS:
        raise ReportError(
            f"Unknown correction {correction!r}; choose from {', '.join(CORRECTIONS)}."
        )
    out = Path(out_dir)
    study = load_study(storage, study_name)
    analysis: Analysis = analyse(study, correction=correction)
    written = write_outputs(analysis, out, chosen)
    if messages is not None:
        messages += [f"wrote {p}" for p in written]
    if dashboard:
        from loran_search.analysis.dashboard import publish

        adir = (
            Path(artifact_dir) if artifact_dir is not None else _default_artifact_dir(storage, out)
        )
        uploads = [
            p
            for p in written
            if p.suffix == ".png" or p.name in ("report.html", "configurations.csv")
        ]
        lines = publish(study, analysis, report_dir=out, artifact_dir=adir, files=uploads)
        if messages is not None:
            messages += lines
    if analysis_out is not None:
        analysis_out.append(analysis)
    return out
