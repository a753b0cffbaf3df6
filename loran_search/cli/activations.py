"""``loran-search activations list | audit | plot | export``: parsers and handlers.

``list`` imports only the registry (no torch, no sympy); ``audit`` imports sympy, numpy and scipy;
``plot`` also imports torch, matplotlib and seaborn. Each handler takes the parsed
``argparse.Namespace`` and returns the exit code; user errors raise
:class:`loran_search.errors.UsageError`.

``audit`` and ``plot`` take ``--study FILE`` (a study YAML): without ``--interval`` they then use
the range of ``P = B·A`` that study's runs visited (``±`` the largest ``|P|`` of its completed
search trials, :func:`loran_search.record.visited_bound`: the range the search screens forms on),
read through :func:`loran_search.analysis.visited_interval`;
``--interval`` still overrides it, and a study without mechanism records keeps ``[-1, 1]`` with a
note on stderr.

``export STUDY.yaml --top K`` (a form search, ``search.forms``) prints a Python module of
``register_formula(...)`` calls for the study's ``K`` best forms (by best search value), each with
its canonical formula, the best trial's parameter values as defaults and the searched ranges, so a
discovered form becomes a named registry entry (list the module under ``imports:``); it imports
optuna, pandas and the analysis (:func:`loran_search.analysis.forms.best_forms`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loran_search.cli._args import add_command, add_format, add_import, add_set
from loran_search.errors import UsageError
from loran_search.words import count

if TYPE_CHECKING:
    from loran_search.activations.registry import ActivationSpec

_HERE = "loran_search.cli.activations"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``activations list | audit | plot``."""
    act = sub.add_parser("activations", help="list, audit and plot registered activations")
    act_sub = act.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = add_command(act_sub, "list", f"{_HERE}:cmd_list", "list the registry")
    p.add_argument("--family", help="only this family")
    p.add_argument("--pattern", help="only names matching this glob, e.g. 'sinter*'")
    add_format(p, ("table", "json"), "table")
    add_import(p)
    p = add_command(
        act_sub,
        "audit",
        f"{_HERE}:cmd_audit",
        "symbolic audit: f(0), f'(0), Lipschitz bound on an interval, start-at-zero, warnings",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="activations (default: all)")
    p.add_argument("--expr", action="append", default=[], metavar="E", help="audit a formula in x")
    add_set(p, "a parameter as name.param=value")
    _add_interval(p)
    add_format(p, ("table", "json"), "table")
    add_import(p)
    p = add_command(
        act_sub, "plot", f"{_HERE}:cmd_plot", "plot f and f' side by side (seaborn PNG)"
    )
    p.add_argument("names", nargs="+", metavar="NAME")
    add_set(p, "a parameter as name.param=value")
    _add_interval(p)
    p.add_argument("--out", required=True, metavar="FILE.png")
    add_import(p)
    p = add_command(
        act_sub,
        "export",
        f"{_HERE}:cmd_export",
        "print register_formula(...) calls for the best forms of a form search (search.forms)",
    )
    p.add_argument("file", metavar="STUDY.yaml", help="the study file of a form search")
    p.add_argument("--top", type=int, default=1, metavar="K", help="how many forms (default 1)")
    p.add_argument("--storage", help="the study's storage URL (default: the file's)")
    p.add_argument(
        "--prefix",
        help="name the forms PREFIX1, PREFIX2, ... (default: their stable form_<hash> names)",
    )
    p.add_argument("--out", metavar="FILE.py", help="write the module there (default: stdout)")


def _add_interval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--interval",
        default=None,
        metavar="A,B",
        help="default -1,1, or the visited range of P in the --study",
    )
    p.add_argument(
        "--study",
        metavar="FILE",
        help="a study YAML: default --interval to the range of P its runs visited",
    )


def resolve_interval(args: argparse.Namespace) -> tuple[float, float]:
    """``--interval``, else the visited range of ``--study``'s runs, else ``(-1, 1)``.

    Where the interval comes from is printed to stderr when it is the study's.

    Raises:
        UsageError: A malformed ``--interval``, a missing study file, storage or study.
    """
    if args.interval is not None:
        return parse_interval(args.interval)
    if not getattr(args, "study", None):
        return (-1.0, 1.0)
    from loran_search.analysis.api import ReportError, visited_interval
    from loran_search.cli.report import study_from_file

    storage, name, _ = study_from_file(args.study)
    try:
        interval, why = visited_interval(storage=storage, study_name=name)
    except ReportError as err:
        raise UsageError(str(err)) from None
    print(f"interval from study '{name}': {why}", file=sys.stderr)
    return interval


#: Key of ``--set`` values that apply to ``--expr`` formulas (``--set a=0.1`` without a name).
FORMULA_KEY = ""


def get_spec(name: str) -> ActivationSpec:
    """The registry entry ``name`` (the registry is imported on first use, not at start-up)."""
    from loran_search.activations import get_spec as _get_spec

    return _get_spec(name)


def list_activations(**kwargs: Any) -> list[str]:
    """Registered names (see :func:`activations.list_activations`)."""
    from loran_search.activations import list_activations as _list

    return _list(**kwargs)


def _fmt(v: float) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A plain-text table that fits the terminal (rich; long cells fold onto further lines).

    Its width is the terminal's; without one (a pipe, a file) or with a terminal of size 0 × 0
    it is :data:`loran_search.console.FALLBACK_COLUMNS` (``COLUMNS`` wins when set). The first
    column never wraps; cells are shown as written (no rich markup, no colour).
    """
    import os

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from loran_search.console import FALLBACK_COLUMNS, terminal_size

    size = terminal_size(sys.stdout)
    env = os.environ.get("COLUMNS", "")
    width = size[0] if size else int(env) if env.isdigit() and int(env) > 0 else FALLBACK_COLUMNS
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="")
    for i, name in enumerate(header):
        table.add_column(name, no_wrap=i == 0, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(c)) for c in row))
    console = Console(width=width, color_system=None, highlight=False, soft_wrap=False)
    with console.capture() as captured:
        console.print(table)
    return "\n".join(line.rstrip() for line in captured.get().rstrip("\n").split("\n"))


def _json_safe(obj: Any) -> Any:
    """Non-finite floats become ``null`` so the output is valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def cmd_list(args: argparse.Namespace) -> int:
    """``activations list [--family F] [--pattern GLOB] [--format table|json]``."""
    names = list_activations(family=args.family, pattern=args.pattern)
    specs = [get_spec(n) for n in names]
    if args.format == "json":
        print(json.dumps([s.to_dict() for s in specs], indent=2))
        return 0
    if not specs:
        print("No activation matches.", file=sys.stderr)
        return 0
    rows = []
    for s in specs:
        params = ", ".join(f"{k}={_fmt(p.default)}" for k, p in s.params.items()) or "-"
        rows.append((s.name, s.family, params, s.expr))
    print(_table(rows, ("name", "family", "defaults", "f(x)")))
    counts: dict[str, int] = {}
    for s in specs:
        counts[s.family] = counts.get(s.family, 0) + 1
    summary = ", ".join(f"{f}: {c}" for f, c in sorted(counts.items()))
    print(f"\n{len(specs)} activations ({summary}).")
    return 0


def parse_interval(text: str) -> tuple[float, float]:
    """``"a,b"`` → ``(a, b)`` with finite ``a < b``.

    Raises:
        UsageError: Anything else, with the expected form.
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        a, b = float(parts[0]), float(parts[1])
    except ValueError:
        raise UsageError(
            f"--interval expects two numbers 'a,b' (e.g. --interval=-1,1), but got {text!r}."
        ) from None
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise UsageError(f"--interval needs finite a < b, but got {text!r}.")
    return a, b


def parse_sets(items: Sequence[str], *, allow_formula: bool) -> dict[str, dict[str, float]]:
    """``["sinter.amplitude=1e-3", "a=0.1"]`` → ``{"sinter": {"amplitude": 1e-3}, "": {"a": 0.1}}``.

    A key without a dot sets a parameter of the ``--expr`` formulas (only if ``allow_formula``).

    Raises:
        UsageError: A malformed item or a non-numeric value.
    """
    out: dict[str, dict[str, float]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise UsageError(
                f"--set {item!r}: write NAME.PARAM=VALUE, e.g. --set sinter.amplitude=1e-3."
            )
        name, dot, param = key.rpartition(".")
        if not dot:
            if not allow_formula:
                raise UsageError(
                    f"--set {item!r}: write NAME.PARAM=VALUE (the activation's name, a dot, "
                    "the parameter), e.g. --set sinter.amplitude=1e-3."
                )
            name, param = FORMULA_KEY, key
        elif not name or not param:
            raise UsageError(f"--set {item!r}: write NAME.PARAM=VALUE, e.g. sinter.amplitude=1e-3.")
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"--set {item!r}: {raw!r} is not a number.") from None
        out.setdefault(name, {})[param] = value
    return out


def _check_set_targets(sets: dict[str, dict[str, float]], names: Sequence[str]) -> None:
    for name in sets:
        if name == FORMULA_KEY:
            continue
        get_spec(name)  # unknown name -> ActivationError with did-you-mean
        if name not in names:
            raise UsageError(
                f"--set {name}.…: '{name}' is not among the activations being processed "
                f"({', '.join(names) or 'none'}); add it to NAME."
            )


def _params_for(name: str, given: dict[str, float]) -> dict[str, float]:
    spec = get_spec(name)
    out: dict[str, float] = {}
    for k, v in given.items():
        p = spec.params.get(k)
        out[k] = int(v) if p is not None and p.integer and v == int(v) else v
    spec.resolve(**out)  # names and ranges checked now, with the registry's message
    return out


def cmd_audit(args: argparse.Namespace) -> int:
    """``activations audit [NAME …] [--expr E] [--set n.p=v] [--interval a,b | --study FILE]``."""
    from loran_search.activations.symbolic import FormulaError, audit, audit_formula

    interval = resolve_interval(args)
    sets = parse_sets(args.overrides, allow_formula=True)
    names = list(args.names) or ([] if args.expr else list_activations())
    for n in names:
        get_spec(n)
    _check_set_targets(sets, names)
    if sets.get(FORMULA_KEY) and not args.expr:
        raise UsageError(
            f"--set {next(iter(sets[FORMULA_KEY]))}=…: a parameter without an activation name "
            "applies to --expr formulas, but none was given. Write NAME.PARAM=VALUE."
        )
    results = []
    for n in names:
        try:
            results.append(audit(n, _params_for(n, sets.get(n, {})), interval=interval))
        except FormulaError as err:
            raise UsageError(
                f"Activation '{n}' ({get_spec(n).module}) declares an expr the audit cannot "
                f"read: {err} Fix its `expr=` (the sympy form of the function)."
            ) from None
    for text in args.expr:
        try:
            results.append(audit_formula(text, sets.get(FORMULA_KEY, {}), interval=interval))
        except FormulaError as err:
            hint = " Give each parameter a value with --set NAME=VALUE." if err.token else ""
            if "unknown name" not in str(err):
                hint = ""
            raise UsageError(f"--expr: {err}{hint}") from None
        except ValueError as err:
            raise UsageError(f"--expr {text!r}: {err}") from None
    if args.format == "json":
        print(json.dumps(_json_safe([r.to_dict() for r in results]), indent=2))
        return 0
    rows = [
        (
            r.name,
            _fmt(r.f0),
            _fmt(r.df0),
            _fmt(r.lipschitz),
            "yes" if r.starts_at_zero else "NO",
            str(len(r.warnings)),
        )
        for r in results
    ]
    a, b = interval
    print(_table(rows, ("name", "f(0)", "f'(0)", f"sup|f'| on [{a:.4g},{b:.4g}]", "ΔW=0", "warn")))
    for r in results:
        if r.warnings:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in r.params.items())
            print(f"\n{r.name}" + (f" ({params})" if params else "") + ":")
            for w in r.warnings:
                print(f"  - {w}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """``activations plot NAME… [--set n.p=v] [--interval a,b | --study FILE] --out FILE``."""
    out = Path(args.out)
    if out.suffix.lower() not in {".png", ".svg", ".pdf"}:
        raise UsageError(f"--out {args.out!r}: use a .png (or .svg/.pdf) file name.")
    interval = resolve_interval(args)
    sets = parse_sets(args.overrides, allow_formula=False)
    names = list(args.names)
    _check_set_targets(sets, names)
    bound = []
    from loran_search.activations import get_activation

    for n in names:
        bound.append(get_activation(n, **_params_for(n, sets.get(n, {}))))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns
    import sympy as sp
    import torch

    from loran_search.activations.symbolic import X, oscillation_grid, spec_expr

    a, b = interval
    xs = np.linspace(a, b, 4001)
    for act in bound:  # enough points per period of each activation's fastest oscillation
        df = sp.diff(spec_expr(act.spec, act.params), X)
        grid, _ = oscillation_grid(df, a, b, 400_000)
        xs = np.union1d(xs, grid)
    sns.set_theme(style="whitegrid")
    palette = sns.color_palette(n_colors=max(len(bound), 1))
    fig, (ax_f, ax_df) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    for act, color in zip(bound, palette, strict=True):
        y = act(x)
        (dy,) = torch.autograd.grad(y.sum(), x)
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in act.params.items())
        label = act.name + (f" ({params})" if params else "")
        for ax, values in ((ax_f, y.detach()), (ax_df, dy)):
            sns.lineplot(
                x=xs,
                y=values.numpy(),
                ax=ax,
                color=color,
                label=label,
                lw=1,
                estimator=None,
                errorbar=None,
                sort=False,
            )
    ax_f.set(title="f(x)", xlabel="x = entry of B·A", ylabel="f(x)")
    ax_df.set(title="f′(x)", xlabel="x = entry of B·A", ylabel="f′(x)")
    handles, labels = ax_f.get_legend_handles_labels()
    for ax in (ax_f, ax_df):
        ax.get_legend().remove()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 2), frameon=False)
    fig.tight_layout(rect=(0, 0.06 * ((len(labels) + 1) // 2), 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return 0


def _nothing_to_export(study: Any, name: str, file: str) -> str:
    """Why a study has no form to export: no form search at all, or none of its forms done."""
    from collections import Counter
    from collections.abc import Mapping

    from loran_search import record as R
    from loran_search.record import FORM_CHOICE

    setup = study.user_attrs.get(R.STUDY_SETUP)
    space = setup.get("space") if isinstance(setup, Mapping) else None
    searched = isinstance(space, Mapping) and bool(space.get("forms"))
    form_trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if R.FORM in t.user_attrs or t.params.get(R.PARAM_ACTIVATION) == FORM_CHOICE
    ]
    if not searched and not form_trials:
        return (
            f"Study '{name}' has no form search: its search space has no `search.forms` "
            "grammar, so there is no form to export (`activations export` writes the best "
            "forms a form search found). To search forms, write a study with a `search.forms` "
            "section and a new study.name (README, 'Form search'; studies/form_search.yaml is "
            "an example) and run it: loran-search run FILE; then export from that file."
        )
    states = Counter(t.state.name for t in form_trials)
    seen = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none yet"
    return (
        f"Study '{name}' has a form search but no completed, non-duplicate form trial to "
        f"export (form trials: {seen}; a screened, inert or failed form is not exported). "
        f"Run it (loran-search run {file}), or see why its forms failed in its report "
        f"(loran-search report {file})."
    )


def cmd_export(args: argparse.Namespace) -> int:
    """``activations export STUDY.yaml --top K``: the best forms as ``register_formula`` calls."""
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, but got {args.top}.")
    if args.prefix is not None and not args.prefix.isidentifier():
        raise UsageError(
            f"--prefix {args.prefix!r} must be a name of letters, digits and '_' (e.g. found_)."
        )
    if args.out and Path(args.out).is_dir():  # before reading the study
        raise UsageError(
            f"--out {args.out} is a folder; give the module's file path, e.g. --out "
            f"{Path(args.out) / 'found_forms.py'}."
        )
    from loran_search.analysis.api import ReportError, load_study
    from loran_search.analysis.forms import best_forms, export_code
    from loran_search.cli.report import study_from_file

    storage, name, _ = study_from_file(args.file)
    storage = args.storage or storage
    try:
        study = load_study(storage, name)
    except ReportError as err:
        raise UsageError(str(err)) from None
    forms = best_forms(study, args.top, prefix=args.prefix)
    if not forms:
        raise UsageError(_nothing_to_export(study, name, args.file))
    metric = study.metric_names[0] if study.metric_names else "value"
    command = f"loran-search activations export {args.file} --top {args.top}"
    if args.prefix:
        command += f" --prefix {args.prefix}"
    code = export_code(forms, study=name, metric=metric, source=command)
    if args.out:
        out = Path(args.out)
        blocker = next((a for a in out.parents if a.exists() and not a.is_dir()), None)
        if blocker is not None:
            raise UsageError(
                f"Cannot write --out {args.out}: {blocker} is a file, not a folder. Choose "
                "another path (the module goes to stdout without --out)."
            )
        try:
            out.parent.mkdir(parents=True, exist_ok=True)  # like `activations plot --out`
            out.write_text(code, encoding="utf-8")
        except OSError as err:
            raise UsageError(
                f"Cannot write --out {args.out}: {err.strerror or err}. Choose a path in a "
                "folder you can write (the module goes to stdout without --out)."
            ) from None
        print(f"wrote {count(len(forms), 'form')} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(code)
    if len(forms) < args.top:
        print(f"(only {count(len(forms), 'completed form')} in study '{name}')", file=sys.stderr)
    return 0
