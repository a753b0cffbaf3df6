"""``loran-search run | worker | confirm | validate | dashboard``: parsers and handlers.

Exit codes: 0 done, 1 a run-time failure, 2 bad input (config errors, a study whose stored
setup differs), 130 Ctrl-C (the running trial is recorded FAIL and queued again).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loran_search.cli._args import add_command, add_import, add_set
from loran_search.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, RuntimeFailure, UsageError
from loran_search.words import count

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from loran_search.config import StudyConfig


_HERE = "loran_search.cli.study"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run``, ``worker``, ``confirm``, ``validate`` and ``dashboard``."""
    no_confirm = "skip the confirmation phase after the search (study.confirm)"
    no_tune = "skip the tuning phase before the confirmation (study.tune)"
    p = add_command(sub, "run", f"{_HERE}:cmd_run", "run (or resume) a study")
    p.add_argument("file", metavar="FILE", help="study YAML")
    p.add_argument("--storage", metavar="URL", help="override study.storage")
    p.add_argument("--n-trials", type=int, metavar="N", help="override study.n_trials")
    add_set(p, "any config key")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--no-confirm", action="store_true", help=no_confirm)
    p.add_argument("--no-tune", action="store_true", help=no_tune)
    add_import(p)

    p = add_command(sub, "worker", f"{_HERE}:cmd_worker", "join a study as a worker")
    p.add_argument("file", metavar="FILE", help="study YAML")
    p.add_argument("--storage", required=True, metavar="URL", help="the shared storage")
    p.add_argument("--n-trials", type=int, metavar="N", help="override study.n_trials")
    add_set(p, "any config key")
    p.add_argument("--no-confirm", action="store_true", help=no_confirm)
    p.add_argument("--no-tune", action="store_true", help=no_tune)
    add_import(p)

    p = add_command(
        sub,
        "confirm",
        f"{_HERE}:cmd_confirm",
        "retrain an existing study's top-k configurations and baselines on held-out seeds and "
        "split",
    )
    p.add_argument("file", metavar="FILE", help="study YAML of the existing study")
    p.add_argument("--top-k", type=int, metavar="K", help="override study.confirm.top_k")
    p.add_argument("--seeds", type=int, nargs="+", metavar="S", help="override study.confirm.seeds")
    p.add_argument("--storage", metavar="URL", help="override study.storage")
    add_set(p, "any config key")
    add_import(p)

    p = add_command(
        sub,
        "tune",
        f"{_HERE}:cmd_tune",
        "tune every arm an existing study's confirmation will take over study.tune",
    )
    p.add_argument("file", metavar="FILE", help="study YAML of the existing study")
    p.add_argument("--storage", metavar="URL", help="override study.storage")
    add_set(p, "any config key")
    add_import(p)

    p = add_command(sub, "validate", f"{_HERE}:cmd_validate", "check study files, print their plan")
    p.add_argument("files", nargs="+", metavar="FILE")
    add_set(p, "any config key")
    add_import(p)

    p = add_command(sub, "dashboard", f"{_HERE}:cmd_dashboard", "start optuna-dashboard")
    p.add_argument("file", nargs="?", metavar="FILE", help="study YAML (or --storage)")
    p.add_argument("--storage", metavar="URL")
    p.add_argument("--port", type=port_number, default=8080, help="TCP port to listen on (1-65535)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the "
        "study to the network, without authentication)",
    )


def port_number(text: str) -> int:
    """``--port``: an integer 1 … 65535 (argparse reports anything else as a usage error)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{port} is not a TCP port; give one from 1 to 65535, e.g. --port 8080"
        )
    return port


def _port_problem(port: int, host: str = "127.0.0.1") -> str | None:
    """Why the dashboard cannot listen on ``host:port`` (in use, not allowed), or ``None``."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        return f"Cannot resolve --host {host!r}: {err}. Give an address such as 127.0.0.1."
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return (
                    f"Port {port} on {host} is in use (another dashboard, or another "
                    f"server). Choose a free one with --port, e.g. --port {port % 65535 + 1}, or "
                    "stop what listens there."
                )
            return f"Cannot listen on {host}:{port}: {err.strerror or err}. Choose another --port."
    return None


def mask_url(url: str) -> str:
    """The URL with its password shown as ``***`` (the storage module, imported when needed)."""
    from loran_search.storage import mask_url as _mask

    return _mask(url)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _load(args: argparse.Namespace, *, environment: bool = True) -> StudyConfig:
    """The study file with ``--storage``/``--n-trials``/``--set`` applied, fully checked.

    ``environment=False`` (the dashboard) skips the checks of this machine (device, model,
    data files), which a command that only reads the storage does not need.
    """
    from loran_search.config import ConfigError
    from loran_search.search.validate import load_config

    overrides = list(getattr(args, "overrides", []) or [])
    if getattr(args, "storage", None):
        overrides.append(f"study.storage={args.storage}")
    if getattr(args, "n_trials", None) is not None:
        overrides.append(f"study.n_trials={args.n_trials}")
    try:
        return load_config(args.file, overrides, environment=environment)
    except ConfigError as err:
        raise UsageError(str(err)) from None


def code_notice(file: str, study_imports: Sequence[str], flag_imports: Sequence[str]) -> str | None:
    """The line ``validate`` prints when a study makes it import Python modules (else ``None``).

    A study's ``imports:`` and ``--import`` are the only parts of a study that execute code
    (like torchtune's ``_component_``); formulas, settings and adapter folders are data.
    """
    named = [f"{m!r} (imports:)" for m in dict.fromkeys(study_imports)]
    named += [f"{m!r} (--import)" for m in dict.fromkeys(flag_imports) if m not in study_imports]
    if not named:
        return None
    return (
        f"{file}: notice: this study executes Python code: it imports {', '.join(named)}, and "
        "importing a module runs it with your permissions (validate just did; run, worker and "
        "confirm do too). List only modules you trust. Nothing else in a study file or an "
        "adapter folder (formulas, settings, safetensors) is ever executed."
    )


def cmd_validate(args: argparse.Namespace) -> int:
    """``loran-search validate FILE…``: every error of every file; exit 2 if any.

    A file whose ``imports:`` (or the ``--import`` flag) names modules also gets a notice line
    on stderr naming them: importing them ran their code (:func:`code_notice`). After ``OK``
    comes the plan (:mod:`loran_search.search.plan`): trials per phase, training runs and
    steps, and a time estimate when the study's storage already holds completed trials.
    """
    from loran_search.activations.registry import recording_plugin_imports
    from loran_search.search.plan import describe
    from loran_search.search.validate import check_file

    bad = 0
    for file in args.files:
        with recording_plugin_imports() as imported:
            cfg, errors = check_file(file, args.overrides)
        notice = code_notice(file, imported, getattr(args, "imports", None) or [])
        if notice:
            _err(notice)
        if errors:
            bad += 1
            _err(f"{file}: {count(len(errors), 'error')}")
            for loc, msg in errors:
                _err(f"  {loc}: {msg}")
        else:
            print(f"{file}: OK")
            if cfg is not None:
                for line in describe(cfg):
                    print(f"  {line}")
    return EXIT_BAD_INPUT if bad else 0


def _command_line() -> str:
    return "loran-search " + " ".join(shlex.quote(a) for a in sys.argv[1:])


class _Bar:
    """The study bar over every phase: trials done/total, the phase now, best value, ETA.

    Its total is the sum of the phases' totals (:func:`loran_search.search.progress.
    phase_counts`: search, then confirmation), so it does not sit at 100 % while the
    confirmation runs; the description names the phase in progress and each phase's count.
    """

    def __init__(self, phases: list[Any], enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            from loran_search.console import bar_layout

            self.bar = tqdm(
                total=sum(ph.total for ph in phases),
                initial=sum(ph.done for ph in phases),
                desc=self.describe(phases),
                unit="trial",
                position=0,
                leave=True,
                file=sys.stderr,
                **bar_layout(sys.stderr),  # a 0×0 pty (`script`) gets a fixed-width bar
            )

    @staticmethod
    def describe(phases: list[Any]) -> str:
        """``study [confirm] search 14/14 · confirm 2/4``: the first unfinished phase named."""
        now = next((ph.name for ph in phases if ph.done < ph.total), phases[-1].name)
        counts = " · ".join(
            f"{ph.name} {ph.done}/{'≤' if ph.estimated else ''}{ph.total}" for ph in phases
        )
        return f"study [{now}] {counts}"

    def update(self, phases: list[Any], best: float | None) -> None:
        if self.bar is None:
            return
        self.bar.total = sum(ph.total for ph in phases)
        self.bar.n = sum(ph.done for ph in phases)
        self.bar.set_description_str(self.describe(phases), refresh=False)
        if best is not None:
            self.bar.set_postfix_str(f"best={best:.4g}", refresh=False)
        self.bar.refresh()

    def write(self, msg: str) -> None:
        if self.bar is None:
            _err(msg)
        else:
            self.bar.write(msg, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run(args: argparse.Namespace, *, report: bool) -> int:
    from loran_search.record import ROLE_CANDIDATE, TrialRecord
    from loran_search.search.confirm import confirm_setup
    from loran_search.search.progress import phase_counts, progress_of
    from loran_search.search.recovery import StudyInterrupted
    from loran_search.search.study import StudyMismatch, open_study
    from loran_search.search.summary import summarize
    from loran_search.search.workers import run_worker

    cfg = _load(args)
    confirm = None if getattr(args, "no_confirm", False) else confirm_setup(cfg)
    from loran_search.search.tune import tune_setup

    tune = None if getattr(args, "no_tune", False) else tune_setup(cfg)
    if tune is not None and confirm is None:
        tune = None  # the tuning chooses the setting each confirmed arm trains with
    try:
        handle = open_study(cfg, log=_err)
    except StudyMismatch as err:
        raise UsageError(str(err)) from None
    study = handle.study
    p = progress_of(study, cfg)
    verb = "created" if handle.created else "resumed"
    _err(
        f"Study '{cfg.study.name}' {verb} in {mask_url(cfg.study.storage)}: {p.finished}/"
        f"{cfg.study.n_trials} candidates and {p.baselines_done}/{p.baselines_total} baselines "
        f"done; {count(len(cfg.study.seeds), 'seed')} per trial. Artifacts: {handle.artifact_dir}"
    )
    for note in handle.notes:
        _err(note)
    _warn_other_machine(study)
    tty = sys.stderr.isatty()
    bar = _Bar(phase_counts(p, cfg, confirm), tty)

    def on_trial(t: Any, prog: Any) -> None:
        bar.update(phase_counts(prog, cfg, confirm), prog.best)
        rec = TrialRecord.from_frozen(t)
        value = f"{t.values[0]:.4g}" if t.values else t.state.name
        why = rec.failure or rec.pruned or ""
        bar.write(
            f"trial {t.number} ({rec.role or ROLE_CANDIDATE}) {dict(t.params)} → "
            f"{value}{'  ' + why if why else ''}"
        )

    try:
        # progress=True: a named per-step bar on a terminal, progress lines in a log file
        result = run_worker(
            handle, progress=True, log=bar.write, on_trial=on_trial, confirm=confirm, tune=tune
        )
    except (StudyInterrupted, KeyboardInterrupt) as err:
        bar.close()
        detail = f"{err} " if isinstance(err, StudyInterrupted) else ""
        _err(
            f"\nInterrupted. {detail}Completed trials are kept in {mask_url(cfg.study.storage)}.\n"
            f"Resume with:\n  {_command_line()}"
        )
        return err.exit_code if isinstance(err, StudyInterrupted) else EXIT_INTERRUPTED
    except BaseException:
        bar.close()  # a LoranSearchError (metric missing, errors in a row): the CLI prints it
        raise
    bar.close()
    _err(f"Worker finished: {count(result.ran, 'trial')} run here; {result.reason}.")
    if result.tune_reason:
        _err(f"Tuning: {count(result.tune_ran, 'trial')} run here; {result.tune_reason}.")
    if result.confirm_reason:
        _err(
            f"Confirmation: {count(result.confirm_ran, 'trial')} run here; {result.confirm_reason}."
        )
    print(summarize(study, cfg))
    if report and cfg.study.report and not getattr(args, "no_report", False):
        _write_report(cfg, handle.storage, handle.artifact_dir)
    if confirm is not None:
        return _confirmation_exit(study, cfg)
    return 0


def _warn_other_machine(study: Any) -> None:
    """Say so when the study's trials ran on a machine whose fingerprint differs from this one.

    Reads the recorded fingerprints (user attr ``environment``) and compares them with this
    machine's (:func:`loran_search.environment.resume_warning`); torch is not imported.
    """
    from loran_search.environment import machine_fingerprint, resume_warning
    from loran_search.record import ENVIRONMENT

    recorded = {
        t.number: fp
        for t in study.get_trials(deepcopy=False)
        if isinstance(fp := t.user_attrs.get(ENVIRONMENT), dict)
    }
    warning = resume_warning(recorded, machine_fingerprint())
    if warning:
        _err(warning)


def _confirmation_exit(study: Any, cfg: StudyConfig) -> int:
    """0, or 1 with the reason when the study has confirmation trials and every one failed.

    A confirmation whose every trial fails (a split the data does not have, a training
    function that cannot evaluate it) has confirmed nothing: the command says so and exits
    1 rather than 0, so a script or CI sees it. The search's trials are kept.
    """
    from optuna.trial import TrialState

    from loran_search.errors import EXIT_FAILURE
    from loran_search.record import CONFIRM_ROLES, FAIL_SURPLUS, TrialRecord

    records = [TrialRecord.from_frozen(t) for t in study.get_trials(deepcopy=False)]
    confirms = [r for r in records if r.role in CONFIRM_ROLES]
    failed = [
        r for r in confirms if r.state == TrialState.FAIL.name and r.failure_kind != FAIL_SURPLUS
    ]
    if not failed or any(r.state == TrialState.COMPLETE.name for r in confirms):
        return 0
    reasons = sorted({r.failure or "no reason recorded" for r in failed})
    shown = "\n".join(f"  {why}" for why in reasons[:5])
    more = f"\n  … and {count(len(reasons) - 5, 'more reason')}" if len(reasons) > 5 else ""
    _err(
        f"loran-search: error: every confirmation trial of study '{cfg.study.name}' failed "
        f"({count(len(failed), 'trial')}); nothing was confirmed. The reasons:\n{shown}{more}\n"
        f"The search's trials are kept in {mask_url(cfg.study.storage)}. Fix the cause (e.g. "
        f"study.confirm.split in {cfg.path or 'FILE'}), then confirm again with\n"
        f"  loran-search confirm {cfg.path or 'FILE'}"
    )
    return EXIT_FAILURE


def report_dir(name: str, base: Path = Path("reports")) -> Path:
    """``reports/<name>``, refused if it would leave ``reports/`` (a hand-typed ``--study``).

    Raises:
        UsageError: ``name`` is not a safe study name (see ``config.study_name_problem``).
    """
    from loran_search.config import study_name_problem

    problem = study_name_problem(name, strict=False)  # an existing study's name: folder rules
    out = base / name
    if problem is None and not out.resolve().is_relative_to(base.resolve()):
        problem = f"it would write outside {base}/"
    if problem is not None:
        raise UsageError(f"Study name {name!r} cannot name a report folder: {problem}")
    return out


def _write_report(cfg: StudyConfig, storage: BaseStorage, artifact_dir: Path) -> None:
    out = report_dir(cfg.study.name)
    try:
        from loran_search.analysis import write_report

        # the opened storage, not the URL: it already names the installed PostgreSQL driver
        analyses: list[Any] = []
        path = write_report(
            storage=storage,
            study_name=cfg.study.name,
            out_dir=out,
            artifact_dir=artifact_dir,
            analysis_out=analyses,
        )
        if analyses and analyses[0].headline:  # the report's first line, where the run ends
            _err(f"Answer: {analyses[0].headline}")
        _err(f"Report: {path}")
    except Exception as err:  # the study is safe in the storage; the report can be redone
        _err(
            f"loran-search: warning: the report could not be written ({type(err).__name__}: "
            f"{err}). The study is complete in {mask_url(cfg.study.storage)}; write the report "
            f"later with\n  loran-search report {cfg.path or 'FILE'} --storage "
            f"{mask_url(cfg.study.storage)}  (put the password back where it shows ***)"
        )


def cmd_run(args: argparse.Namespace) -> int:
    """``loran-search run FILE``: create or resume the study, run it, summarise, report."""
    return _run(args, report=True)


def cmd_worker(args: argparse.Namespace) -> int:
    """``loran-search worker FILE --storage URL``: join the study from another process."""
    return _run(args, report=False)


def _nothing_to_confirm(study: Any, cfg: StudyConfig) -> str:
    """Why a study has nothing to confirm: its search trials by state and failure kind."""
    from collections import Counter

    from loran_search import record as R
    from loran_search.search.progress import role_of

    search = [t for t in study.get_trials(deepcopy=False) if role_of(t) in R.SEARCH_ROLES]
    states = Counter(t.state.name for t in search)
    kinds = Counter(
        str(t.user_attrs.get(R.FAILURE_KIND) or "no reason")
        for t in search
        if t.state.name == "FAIL"
    )
    parts = []
    for state in ("COMPLETE", "FAIL", "PRUNED", "RUNNING", "WAITING"):
        if states[state]:
            detail = ""
            if state == "FAIL":
                detail = " (" + ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items())) + ")"
            parts.append(f"{states[state]} {state}{detail}")
    seen = "; its search trials: " + ", ".join(parts) if parts else "; it has no search trial"
    return (
        f"Nothing to confirm in study '{cfg.study.name}': no candidate trial of its search "
        f"completed with a finite {cfg.study.metric}{seen}. Nothing was queued or trained."
    )


def _open_existing(cfg: StudyConfig, verb: str) -> Any:
    """The study of ``cfg``, which must exist already (``confirm`` and ``tune`` need one).

    Raises:
        UsageError: No such study in the storage (run it first), or its setup changed.
    """
    from loran_search.search.study import StudyMismatch, open_study, study_exists

    url = cfg.study.storage
    if not study_exists(cfg, url):
        raise UsageError(
            f"No study '{cfg.study.name}' in {mask_url(url)}: there is nothing to {verb}.",
            fix=f"Run it first (loran-search run {cfg.path or 'FILE'}), or point --storage at "
            "the storage that holds it.",
        )
    try:
        return open_study(cfg, log=_err)
    except StudyMismatch as err:
        raise UsageError(str(err)) from None


def cmd_confirm(args: argparse.Namespace) -> int:
    """``loran-search confirm FILE [--top-k K] [--seeds S …] [--storage URL]``.

    Confirms an existing study: its top-k completed candidate configurations and the baseline
    at their ranks are retrained on the confirmation seeds and evaluated on the confirmation
    split (``study.confirm``, or its default when the file says ``confirm: false``); nothing is
    searched. Already confirmed configurations are not run again; other seeds or another split
    than the study's confirmation trials were run with are refused.
    """
    from loran_search.record import TrialRecord
    from loran_search.search.confirm import confirm_problems, confirm_setup
    from loran_search.search.recovery import StudyInterrupted
    from loran_search.search.summary import summarize
    from loran_search.search.workers import run_confirmation

    cfg = _load(args)
    setup = confirm_setup(cfg, top_k=args.top_k, seeds=args.seeds, force=True)
    assert setup is not None
    flags = {"top_k": "--top-k", "seeds": "--seeds"}
    problems = confirm_problems(
        setup.to_dict(),
        study_seeds=cfg.study.seeds,
        eval_split=cfg.task.eval_split,
        train_split=cfg.task.train_split,
    )
    if problems:
        lines = []
        for key, message in problems:
            given = getattr(args, key[0], None) is not None
            where = flags[key[0]] if given and key[0] in flags else "study.confirm"
            lines.append(f"  {where}: {message}")
        raise UsageError("The confirmation setup is not usable:\n" + "\n".join(lines))
    handle = _open_existing(cfg, "confirm")
    _warn_other_machine(handle.study)
    source = (
        " and ".join(f for k, f in flags.items() if getattr(args, k, None) is not None)
        or f"{cfg.path or 'FILE'} study.confirm"
    )
    _err(
        f"Confirming study '{cfg.study.name}' in {mask_url(cfg.study.storage)}: top "
        f"{setup.top_k} on seeds {list(setup.seeds)}, evaluated on '{setup.split}'."
    )

    def on_trial(t: Any, prog: Any) -> None:
        rec = TrialRecord.from_frozen(t)
        value = f"{t.values[0]:.4g}" if t.values else t.state.name
        why = rec.failure or rec.pruned or ""
        _err(f"trial {t.number} ({rec.role}) {dict(t.params)} → {value}{'  ' + why if why else ''}")

    try:
        from loran_search.search.tune import tune_setup

        result = run_confirmation(
            handle,
            setup,
            source=source,
            progress=True,
            log=_err,
            on_trial=on_trial,
            tune=tune_setup(cfg),
        )
    except (StudyInterrupted, KeyboardInterrupt) as err:
        detail = f"{err} " if isinstance(err, StudyInterrupted) else ""
        _err(f"\nInterrupted. {detail}Resume with:\n  {_command_line()}")
        return err.exit_code if isinstance(err, StudyInterrupted) else EXIT_INTERRUPTED
    if result.tune_reason:
        _err(f"Tuning: {count(result.tune_ran, 'trial')} run here; {result.tune_reason}.")
    if result.confirm_planned == 0 and result.confirm_ran == 0:
        raise RuntimeFailure(
            _nothing_to_confirm(handle.study, cfg),
            fix=f"Run the search first, once what made it fail is fixed (the trials' "
            f"user_attrs['failure'] say what; `loran-search report {cfg.path or 'FILE'}`): "
            f"loran-search run {cfg.path or 'FILE'}",
        )
    _err(f"Confirmation: {count(result.confirm_ran, 'trial')} run here; {result.confirm_reason}.")
    print(summarize(handle.study, cfg))
    return _confirmation_exit(handle.study, cfg)


def host_warning(host: str) -> str | None:
    """A warning when ``host`` is not a loopback address (the dashboard has no authentication).

    ``localhost`` and every ``127.x.y.z`` / ``::1`` address are loopback; anything else
    (``0.0.0.0``, ``::``, a LAN address or name) lets other machines read and edit the study.
    """
    import ipaddress

    if host.strip().lower() == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass  # a host name other than localhost: assume it is reachable from elsewhere
    return (
        f"loran-search: warning: the dashboard listens on {host}, not only on this machine: "
        "anyone who can reach this port can read the study and write notes into it "
        "(optuna-dashboard has no authentication). Use --host 127.0.0.1 (the default) and an "
        "SSH tunnel (ssh -L 8080:127.0.0.1:8080 HOST) to keep it private."
    )


def cmd_tune(args: argparse.Namespace) -> int:
    """``loran-search tune FILE [--storage URL]``: the tuning phase of an existing study.

    Every arm the confirmation will take (the top-k complete configurations, the baseline at
    their ranks) is trained at every point of ``study.tune`` on ``study.seeds`` and evaluated
    on the search split (:mod:`loran_search.search.tune`); nothing is searched or confirmed.
    Points already run are not run again; another grid than the study's tune trials ran with is
    refused.
    """
    from loran_search.record import TrialRecord
    from loran_search.search.recovery import StudyInterrupted
    from loran_search.search.tune import tune_setup
    from loran_search.search.workers import run_tuning

    cfg = _load(args)
    tune = tune_setup(cfg)
    if tune is None:
        raise UsageError(
            f"{cfg.path or 'FILE'} has no study.tune: there is no grid to tune over.",
            fix="Add e.g. study: {tune: {training.learning_rate: [3.0e-4, 1.0e-3, 3.0e-3]}} "
            "(or --set 'study.tune={training.learning_rate: [3.0e-4, 1.0e-3]}').",
        )
    handle = _open_existing(cfg, "tune")

    def on_trial(t: Any, prog: Any) -> None:
        rec = TrialRecord.from_frozen(t)
        value = f"{t.values[0]:.4g}" if t.values else t.state.name
        point = t.user_attrs.get("tuned") or {}
        _err(f"trial {t.number} ({rec.role}) {dict(t.params)} at {point} → {value}")

    try:
        result = run_tuning(handle, tune, progress=sys.stderr.isatty(), log=_err, on_trial=on_trial)
    except (StudyInterrupted, KeyboardInterrupt) as err:
        detail = f"{err} " if isinstance(err, StudyInterrupted) else ""
        _err(f"\nInterrupted. {detail}Resume with:\n  {_command_line()}")
        return err.exit_code if isinstance(err, StudyInterrupted) else EXIT_INTERRUPTED
    _err(f"Tuning: {count(result.tune_ran, 'trial')} run here; {result.tune_reason}.")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    """``loran-search dashboard FILE|--storage URL [--port P] [--host H]``: optuna-dashboard.

    It listens on ``--host`` (127.0.0.1 by default); a non-loopback address gets a warning.
    """
    from loran_search.storage import (
        StorageURLError,
        default_artifact_dir,
        open_storage,
        parse_storage_url,
    )

    if args.file is None and not args.storage:
        raise UsageError(
            "Give a study FILE or --storage URL, e.g. loran-search dashboard "
            "studies/sinter_amplitude.yaml"
        )
    problem = _port_problem(args.port, args.host)  # before opening anything
    if problem:
        raise UsageError(problem)
    artifacts = None
    if args.file is not None:
        cfg = _load(args, environment=False)
        url = cfg.study.storage
        artifacts = cfg.study.artifacts
    else:
        url = args.storage
    try:
        parsed = parse_storage_url(url)
    except StorageURLError as err:
        raise UsageError(str(err)) from None
    if parsed.path is not None and not parsed.path.exists():
        raise UsageError(f"No storage at {parsed.path}: run the study first (loran-search run …).")
    art = Path(artifacts) if artifacts else default_artifact_dir(url)
    art.mkdir(parents=True, exist_ok=True)
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import run_server

    storage = open_storage(url, heartbeat_interval=None)
    warning = host_warning(args.host)
    if warning:
        _err(warning)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    _err(
        f"optuna-dashboard on http://{shown}:{args.port}/dashboard (storage {mask_url(url)}, "
        f"artifacts {art}); Ctrl-C stops it."
    )
    try:
        run_server(
            storage,
            host=args.host,
            port=args.port,
            artifact_store=FileSystemArtifactStore(str(art)),
        )
    except KeyboardInterrupt:
        return 0
    except OSError as err:  # taken between the check and the server's own bind
        raise UsageError(
            _port_problem(args.port, args.host)
            or f"The dashboard could not listen on port {args.port}: {err}"
        ) from None
    return 0
