"""Publish the report into the study itself, for ``optuna-dashboard``.

* The summary (the report's first screen), the top of the configuration table and the data notes
  become the study's **note** (``optuna_dashboard.save_note``), shown on the study page.
* The figures, ``report.html`` and ``configurations.csv`` become **study artifacts**
  (``optuna.artifacts.upload_artifact`` with ``study_or_trial=study``) in a
  ``FileSystemArtifactStore``. The dashboard shows them when started with the same directory::

      optuna-dashboard STORAGE --artifact-dir ARTIFACT_DIR

  Artifacts are named ``report-<file>``; writing the report again overwrites them in place
  (same artifact id) instead of piling up copies. The ids of the published files are kept in the
  study user attr :data:`loran_search.record.STUDY_REPORT_ARTIFACTS` (``{filename: id}``), so
  finding them needs no Optuna internals; a study published before that attr existed is read
  with ``optuna.artifacts.get_all_artifact_meta``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.analysis.fmt import markdown_table
from loran_search.analysis.model import Analysis
from loran_search.analysis.render import display_configurations, summary_markdown
from loran_search.words import count

if TYPE_CHECKING:
    import optuna

PREFIX = "report-"
NOTE_TOP = 10


def note_markdown(a: Analysis, *, report_dir: Path, artifact_dir: Path | None) -> str:
    """The study note: summary, top configurations, data notes and where the rest lives."""
    parts = [summary_markdown(a)]
    if len(a.configurations):
        table = display_configurations(a).head(NOTE_TOP)
        keep = [c for c in table.columns if c not in ("family", "Lipschitz", "C/P/F/R", "note")]
        parts += [
            f"## Top configurations (of {len(a.configurations)})",
            "",
            markdown_table(table[keep]),
            "",
        ]
    where = f"Full report: `{report_dir / 'report.html'}`"
    if artifact_dir is not None:
        where += (
            f"; figures, report.html and configurations.csv are study artifacts in "
            f"`{artifact_dir}` (start the dashboard with `--artifact-dir {artifact_dir}`)"
        )
    parts.append(where + ".")
    return "\n".join(parts) + "\n"


def _existing_artifacts(study: optuna.Study) -> dict[str, str]:
    """``{filename: artifact_id}`` of the report files published in the study before."""
    known = R.StudyAttrs.of(study.user_attrs).report_artifacts
    if known is not None:
        return {str(k): str(v) for k, v in known.items() if isinstance(v, str)}
    from optuna.artifacts import get_all_artifact_meta

    try:
        metas = get_all_artifact_meta(study)
    except (TypeError, ValueError, KeyError):  # an entry deleted in the dashboard reads as null
        return {}
    return {m.filename: m.artifact_id for m in metas if m.filename.startswith(PREFIX)}


def _exists(store: Any, artifact_id: str) -> bool:
    """Whether the store still holds ``artifact_id`` (the dashboard may have deleted it)."""
    from optuna.artifacts.exceptions import ArtifactNotFound

    try:
        store.open_reader(artifact_id).close()
    except ArtifactNotFound:
        return False
    return True


def publish(
    study: optuna.Study,
    a: Analysis,
    *,
    report_dir: Path,
    artifact_dir: Path,
    files: list[Path],
) -> list[str]:
    """Save the note and upload ``files`` as study artifacts.

    Args:
        study: The analysed study (its storage is written to).
        a: The analysis.
        report_dir: Where the report files are.
        artifact_dir: Directory of the ``FileSystemArtifactStore`` (created if needed).
        files: Files to upload (figures, report.html, configurations.csv).

    Returns:
        Human-readable lines saying what was published where (or why not).
    """
    import shutil
    import tempfile

    import optuna
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    lines: list[str] = []
    try:
        from optuna_dashboard import save_note

        save_note(study, note_markdown(a, report_dir=report_dir, artifact_dir=artifact_dir))
        lines.append(f"study note saved in the storage of '{study.study_name}'")
    except Exception as err:
        lines.append(f"study note not saved: {type(err).__name__}: {err}")
    if not files:
        return lines
    artifact_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))
    existing = _existing_artifacts(study)
    published = dict(existing)
    n_new = n_updated = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            name = PREFIX + path.name
            try:
                if name in existing and _exists(store, existing[name]):
                    with path.open("rb") as fh:
                        store.write(existing[name], fh)
                    n_updated += 1
                else:
                    staged = Path(tmp) / name  # the artifact's filename is the file's name
                    shutil.copyfile(path, staged)
                    published[name] = upload_artifact(
                        artifact_store=store, file_path=str(staged), study_or_trial=study
                    )
                    n_new += 1
            except (OSError, ValueError, optuna.exceptions.OptunaError) as err:
                lines.append(f"artifact {name} not uploaded: {type(err).__name__}: {err}")
    if published != existing:
        study.set_user_attr(R.STUDY_REPORT_ARTIFACTS, published)
    lines.append(
        f"{count(n_new + n_updated, 'study artifact')} ({n_new} new, {n_updated} updated) in "
        f"{artifact_dir} — view with: optuna-dashboard STORAGE --artifact-dir {artifact_dir}"
    )
    return lines
