r"""The report's form section (``search.forms``): the best forms, their formulas and shapes.

Read from the trial records only (:mod:`loran_search.record`): a form trial records its
canonical formula in ``activation_spec.expr`` and ``form`` (``{name, expr, tree, key,
interval}``), a screened one ``failure = "screened: …"``, an answered repeat ``duplicate_of``.
The section holds:

* **counts** — :func:`loran_search.record.form_counts`: proposed, screened, deduplicated,
  skipped as inert, trained, distinct forms;
* **the top forms** — the configurations of family ``form`` in the configuration table's order
  (best first; :mod:`loran_search.analysis.configurations`), each with its formula (plain text in
  Markdown, LaTeX from ``sympy.latex`` rendered by matplotlib's mathtext as an embedded image in
  the HTML), its search value and gain, its confirmation (held-out mean, baseline mean and gain
  when it was confirmed), its mechanism telemetry (effective non-linearity ``ν = ‖f(P) − P‖/‖P‖``
  and the stable rank of its update against LoRA's) and its shape on the visited range
  ``[−m, m]`` of ``P`` (:func:`loran_search.analysis.mechanism.visited_interval`):
  ``max |f(x) − x| / m`` (the largest departure from the identity, relative to the range) and
  ``sup |f'|`` on a 4001-point grid;
* **a figure** of ``f(x) − x`` and ``f'(x)`` of the top forms on that range.

Formulas are parsed by the safe parser (:func:`activations.formula.parse_formula`) and compiled
by its numpy compiler; nothing is registered and no text is evaluated.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loran_search import record as R
from loran_search.analysis.fmt import (
    data_uri,
    formatted,
    inline,
    json_rows,
    markdown_table,
    number,
    params_text,
    signed_fixed,
)
from loran_search.analysis.model import FormsAnalysis, Records
from loran_search.analysis.plots import DPI, pyplot
from loran_search.analysis.records import load_records
from loran_search.record import FORM_FAMILY

if TYPE_CHECKING:
    import optuna

#: Forms shown in the table.
TOP = 10
#: Forms drawn in the figure.
TOP_DRAWN = 4
#: Points of the shape grid.
GRID = 4001
FIGURE = "form_shapes.png"
CAPTION = "f(x) − x and f′(x) of the top forms on the visited range of P = B·A."


def _compiled(expr: str, params: Mapping[str, float]) -> tuple[Any, Any, str]:
    """``f``, ``f'`` (numpy) and the LaTeX of ``expr`` at ``params`` (safe parser)."""
    import sympy as sp

    from loran_search.activations.formula import X, compile_expr, parse_formula

    sym = parse_formula(expr, list(params))
    names = {s: rf"\mathrm{{{s.name}}}" for s in sym.free_symbols if len(s.name) > 1}
    latex = sp.latex(sym, mul_symbol="dot", symbol_names=names)
    values = {s: float(params[s.name]) for s in sym.free_symbols if s.name in params}
    f = sym.subs(values)
    return compile_expr(f, "numpy"), compile_expr(sp.diff(f, X), "numpy"), latex


def _shape(expr: str, params: Mapping[str, float], interval: tuple[float, float]) -> dict:
    fn, dfn, latex = _compiled(expr, params)
    xs = np.linspace(interval[0], interval[1], GRID)
    with np.errstate(all="ignore"):
        y = np.asarray(fn(xs), dtype=float) * np.ones_like(xs)
        dy = np.asarray(dfn(xs), dtype=float) * np.ones_like(xs)
    m = max(abs(interval[0]), abs(interval[1])) or 1.0
    return {
        "departure": float(np.nanmax(np.abs(y - xs)) / m),
        "slope_max": float(np.nanmax(np.abs(dy))),
        "latex": latex,
        "xs": xs,
        "y": y,
        "dy": dy,
    }


def analyse_forms(
    study: optuna.Study,
    rec: Records,
    configurations: pd.DataFrame,
    interval: tuple[float, float],
) -> FormsAnalysis | None:
    """The form section: the counts, the form configurations with their shapes on ``interval``.

    Args:
        study: The study (its trial records).
        rec: Its records (the families of its trials).
        configurations: The configuration table (best first).
        interval: The visited range of ``P`` the shapes are measured on.

    Returns:
        ``None`` when the study has no form trial.
    """
    records = [R.TrialRecord.from_frozen(t) for t in study.get_trials(deepcopy=False)]
    if not any(r.form for r in records):
        return None
    counts = R.form_counts(records)
    exprs: dict[str, str] = {}
    trees: dict[str, str] = {}
    for r in records:
        if r.form and r.activation:
            exprs.setdefault(r.activation, str(r.form.get("expr")))
            trees.setdefault(r.activation, str(r.form.get("tree")))
    interval = (float(interval[0]), float(interval[1]))
    c = configurations
    forms = c[c["family"] == FORM_FAMILY] if len(c) else c
    rows, latex, notes = [], {}, []
    for _, row in forms.iterrows():
        name = str(row["activation"])
        expr = exprs.get(name)
        if expr is None:
            continue
        params = dict(row["key"][2])
        try:
            shape = _shape(expr, params, interval)  # type: ignore[arg-type]
        except Exception as err:  # a formula the numpy compiler cannot evaluate here
            notes.append(f"Shape of {name} ({expr}) not measured: {type(err).__name__}: {err}")
            shape = {"departure": math.nan, "slope_max": math.nan, "latex": ""}
        latex[expr] = shape["latex"]
        evidence = str(row.get("evidence", "search"))
        rows.append(
            {
                "form": name,
                "formula": expr,
                "tree": trees.get(name, ""),
                "params": params_text(params),
                "values": params,
                "rank": row["rank"],
                "metric": number(row.get("metric_mean")),
                "search_gain": number(row.get("search_gain")),
                "evidence": evidence,
                "gain": number(row.get("gain")),
                "gain_ci_low": number(row.get("gain_ci_low")),
                "gain_ci_high": number(row.get("gain_ci_high")),
                "confirm": number(row.get("confirm_metric_mean")),
                "confirm_baseline": number(row.get("confirm_baseline_mean")),
                "nonlinearity": number(row.get("nonlinearity")),
                "stable_rank": number(row.get("stable_rank")),
                "stable_rank_lora": number(row.get("stable_rank_lora")),
                "departure": shape["departure"],
                "slope_max": shape["slope_max"],
                "trials": row.get("trials", ""),
            }
        )
    table = pd.DataFrame(rows)
    # every form is its own activation: the trained ones, and those screened or skipped as inert
    names = set(table["form"]) if len(table) else set()
    t = rec.trials
    names |= {str(n) for n, f in zip(t["activation"], t["family"], strict=True) if f == FORM_FAMILY}
    return FormsAnalysis(counts, table, interval, latex=latex, notes=notes, names=frozenset(names))


def register_recorded(study: optuna.Study) -> list[str]:
    """Register the study's recorded forms, so the registry-based parts of the report see them.

    A form is registered for its study while it runs (like an inline formula); a report in
    another process finds it in the record: ``activation_spec`` = ``{name, family: form,
    params, expr}``. Each one is registered from its ``expr`` through the safe parser
    (:func:`activations.formula.register_formula`), its parameters with the ranges of the
    study's stored ``search.forms.params`` (the study setup), else the recorded values' span.
    A name already registered is left as it is.

    Returns:
        Notes on the forms that could not be registered.
    """
    from loran_search.activations import ActivationError, find_spec
    from loran_search.activations.formula import FormulaError, register_formula

    declared = R.form_param_declarations(study.user_attrs)
    seen: dict[str, tuple[str, dict[str, list[float]]]] = {}
    for t in study.get_trials(deepcopy=False):
        spec = R.TrialRecord.from_frozen(t).activation_spec
        if spec is None or spec.get("family") != FORM_FAMILY:
            continue
        name, expr = spec.get("name"), spec.get("expr")
        if not isinstance(name, str) or not isinstance(expr, str):
            continue
        values = seen.setdefault(name, (expr, {}))[1]
        for p, v in (spec.get("params") or {}).items():
            if isinstance(v, (int, float)) and math.isfinite(float(v)):
                values.setdefault(str(p), []).append(float(v))
    notes = []
    for name, (expr, values) in seen.items():
        if find_spec(name) is not None:
            continue
        decl = {}
        for p, vs in values.items():
            lo, hi, log = R.form_param_range(declared.get(p), vs)
            decl[p] = {"default": vs[0], "low": lo, "high": hi, "log": log}
        try:
            register_formula(name, expr, decl, family=FORM_FAMILY)
        except (FormulaError, ActivationError, ValueError) as err:
            notes.append(f"Form {name} ({expr}) could not be registered for the report: {err}")
    return notes


# ------------------------------------------------------------------------------ output


def display(forms: FormsAnalysis, metric: str = "metric") -> pd.DataFrame:
    """The table as shown: the top :data:`TOP` measured forms (a finite search value), formatted.

    Forms that were never trained (screened, skipped as inert) are in the counts, not here.
    """
    t = forms.table
    t = t[t["metric"].notna()].head(TOP) if len(t) else t
    if t.empty:
        return pd.DataFrame()

    return pd.DataFrame(
        {
            "#": range(1, len(t) + 1),
            "formula": t["formula"],
            "params": t["params"],
            "rank": t["rank"],
            metric: [formatted(v) for v in t["metric"]],
            "search gain": [signed_fixed(v) for v in t["search_gain"]],
            "confirm": [formatted(v) for v in t["confirm"]],
            "confirm baseline": [formatted(v) for v in t["confirm_baseline"]],
            "gain (evidence)": [
                f"{signed_fixed(g)} ({e})" for g, e in zip(t["gain"], t["evidence"], strict=True)
            ],
            "ν": [formatted(v, ".3g") for v in t["nonlinearity"]],
            "stable rank (LoRA)": [
                f"{formatted(a, '.3g')} ({formatted(b, '.3g')})"
                for a, b in zip(t["stable_rank"], t["stable_rank_lora"], strict=True)
            ],
            "max|f−x|/m": [formatted(v, ".3g") for v in t["departure"]],
            "sup|f′|": [formatted(v, ".3g") for v in t["slope_max"]],
            "form": t["form"],
        }
    )


def _counts(forms: FormsAnalysis) -> str:
    c = forms.counts
    return (
        f"Proposed {c['proposed']} ({c['distinct']} distinct canonical forms) · screened "
        f"{c['screened']} · deduplicated {c['deduplicated']} · skipped as inert {c['inert']} · "
        f"trained {c['trained']}."
    )


def _caption(forms: FormsAnalysis) -> str:
    a, b = forms.interval
    return (
        f"The trained forms in the configuration table's order (best first; top {TOP}; the "
        "screened and inert ones are in the counts above). `search gain` is "
        "on the search split (optimistic: the forms were chosen on it); `confirm` is held out "
        "when the form was confirmed, against `confirm baseline` (QLoRA, same seeds); `ν` the "
        "effective non-linearity ‖f(P) − P‖/‖P‖ and `stable rank` that of the update against "
        f"LoRA's (medians over runs); the shape on the visited range [{a:.3g}, {b:.3g}] of P: "
        "`max|f−x|/m` the largest departure from the identity relative to m, `sup|f′|` the "
        "steepest slope."
    )


def draw(forms: FormsAnalysis, plot_dir: Path, notes: list[str]) -> Path | None:
    """Draw ``f(x) − x`` and ``f'(x)`` of the top forms into ``plot_dir``."""
    t = (
        forms.table[forms.table["metric"].notna()].head(TOP_DRAWN)
        if len(forms.table)
        else forms.table
    )
    if t.empty:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    xs = None
    for _, row in t.iterrows():
        try:
            shape = _shape(row["formula"], row["values"], forms.interval)
        except Exception as err:
            notes.append(f"Shape of {row['form']} not drawn: {type(err).__name__}: {err}")
            continue
        xs = shape["xs"]
        label = f"{row['formula']} ({row['params']})"
        axes[0].plot(xs, shape["y"] - xs, linewidth=1, label=label)
        axes[1].plot(xs, shape["dy"], linewidth=1, label=label)
    if xs is None:
        plt.close(fig)
        return None
    axes[0].axhline(0, color="k", linestyle="--", linewidth=0.8)
    axes[1].axhline(1, color="k", linestyle="--", linewidth=0.8, label="identity (QLoRA)")
    axes[0].set_title("f(x) − x (departure from the identity)")
    axes[1].set_title("f′(x)")
    for ax in axes:
        ax.set_xlabel("x (an entry of P = B·A)")
    axes[1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    plot_dir.mkdir(parents=True, exist_ok=True)
    forms.figure = plot_dir / FIGURE
    fig.savefig(forms.figure, dpi=DPI)
    plt.close(fig)
    return forms.figure


def _latex_png(latex: str) -> str | None:
    """The LaTeX as a base64 PNG (matplotlib mathtext), ``None`` when mathtext refuses it."""
    if not latex:
        return None
    plt = pyplot()
    fig = plt.figure(figsize=(0.01, 0.01))
    try:
        fig.text(0, 0, f"${latex}$", fontsize=12)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.03)
    except Exception:  # mathtext knows a subset of LaTeX: the text stays
        return None
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def markdown(forms: FormsAnalysis, metric: str, plot_prefix: str = "plots/") -> str:
    """The section as Markdown (formulas as plain text)."""
    shown = display(forms, metric)
    lines = [
        "## Forms",
        "",
        _counts(forms),
        "",
        _caption(forms),
        "",
    ]
    if shown.empty:
        lines.append("(no form completed)")
    else:
        lines.append(markdown_table(shown.assign(formula=[f"`{f}`" for f in shown["formula"]])))
    if forms.figure is not None:
        lines += ["", f"![{CAPTION}]({plot_prefix}{forms.figure.name})"]
    return "\n".join(lines) + "\n"


def html_section(forms: FormsAnalysis, metric: str) -> str:
    """The section as HTML: the formulas as LaTeX images (text when mathtext cannot draw one)."""
    shown = display(forms, metric)
    parts = [
        "<h2 id='forms'>Forms</h2>",
        f"<p>{_counts(forms)}</p>",
        f"<p class='caption'>{inline(_caption(forms))}</p>",
    ]
    if shown.empty:
        parts.append("<p><em>(no form completed)</em></p>")
    else:
        head = "".join(f"<th>{html.escape(str(col))}</th>" for col in shown.columns)
        body = []
        for row in shown.itertuples(index=False):
            cells = []
            for i, v in enumerate(row):
                if i == 1:
                    latex = forms.latex.get(str(v), "")
                    png = _latex_png(latex)
                    text = html.escape(str(v))
                    if png:
                        cells.append(
                            f"<td class='text'><img alt='{html.escape(latex, quote=True)}' "
                            f"src='data:image/png;base64,{png}'><br><code>{text}</code></td>"
                        )
                    else:
                        cells.append(f"<td class='text'><code>{text}</code></td>")
                else:
                    cells.append(f"<td>{html.escape(str(v))}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        parts.append(
            f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
    if forms.figure is not None and forms.figure.exists():
        parts.append(
            f"<figure id='fig-form-shapes'><img alt='{html.escape(CAPTION)}' "
            f"src='{data_uri(forms.figure)}'><figcaption>{html.escape(CAPTION)}"
            "</figcaption></figure>"
        )
    return "".join(parts)


def write(forms: FormsAnalysis, out_dir: Path, formats: Collection[str]) -> list[Path]:
    """``forms.csv`` (``csv``) and ``forms.json`` (``json``: the counts and the table)."""
    written: list[Path] = []
    if "csv" in formats:
        path = out_dir / "forms.csv"
        forms.table.drop(columns=["values"], errors="ignore").to_csv(path, index=False)
        written.append(path)
    if "json" in formats:
        path = out_dir / "forms.json"
        doc = {"counts": forms.counts, "interval": list(forms.interval)}
        path.write_text(json.dumps({**doc, "forms": json_rows(forms.table)}, indent=1) + "\n")
        written.append(path)
    return written


# ------------------------------------------------------------------------------ export


@dataclass(frozen=True)
class ExportedForm:
    """One form to register: its name, formula, parameter declarations and where it came from.

    Attributes:
        name: The registry name to give it (the stable ``form_<hash>``, or a chosen prefix).
        form: The study's name of the form (``form_<hash>``).
        expr: The canonical formula.
        params: ``{param: {default, low, high, log}}``: the default is the best trial's value,
            the range the study's searched range (``search.forms.params``).
        trial: The best trial of the form.
        value: Its value (the study metric, search split).
        confirmed: The held-out mean of its confirmation trials, when confirmed.
    """

    name: str
    form: str
    expr: str
    params: dict[str, dict[str, Any]]
    trial: int
    value: float
    confirmed: float | None = None


def best_forms(study: optuna.Study, top: int, *, prefix: str | None = None) -> list[ExportedForm]:
    """The ``top`` best distinct forms of a study, by their best search value (records only).

    A form is ranked by its best COMPLETE ``candidate`` trial (direction-aware; answered repeats
    left out); its parameters get that trial's values as defaults and the study's searched
    ranges (the stored setup's ``search.forms.params``; a fixed parameter is fixed). The value
    is the search-split one, optimistic for the best of many forms: the confirmation mean is
    given when the form was confirmed.

    Args:
        study: The study.
        top: How many forms.
        prefix: Name the forms ``<prefix>1``, ``<prefix>2``, … instead of ``form_<hash>``.
    """
    direction = load_records(study).direction
    declared = R.form_param_declarations(study.user_attrs)
    best: dict[str, R.TrialRecord] = {}
    confirmed: dict[str, list[float]] = {}
    for t in study.get_trials(deepcopy=False):
        r = R.TrialRecord.from_frozen(t)
        spec = r.activation_spec or {}
        if spec.get("family") != FORM_FAMILY or r.state != "COMPLETE" or r.value is None:
            continue
        if not math.isfinite(r.value) or r.duplicate_of is not None or not r.activation:
            continue
        if r.role == R.ROLE_CONFIRM:
            confirmed.setdefault(r.activation, []).append(r.value)
            continue
        if r.role != R.ROLE_CANDIDATE:
            continue
        old = best.get(r.activation)
        better = old is None or (
            r.value > old.value if direction == "maximize" else r.value < old.value  # type: ignore[operator]
        )
        if better:
            best[r.activation] = r
    ranked = sorted(
        best.values(),
        key=lambda r: (-r.value if direction == "maximize" else r.value, r.number),  # type: ignore[operator]
    )[:top]
    out = []
    for i, r in enumerate(ranked, 1):
        spec = r.activation_spec or {}
        params = {}
        for p, v in (spec.get("params") or {}).items():
            value = float(v)
            lo, hi, log = R.form_param_range(declared.get(str(p)), [value])
            params[str(p)] = {"default": value, "low": lo, "high": hi}
            if log:
                params[str(p)]["log"] = True
        conf = confirmed.get(str(r.activation))
        out.append(
            ExportedForm(
                name=f"{prefix}{i}" if prefix else str(r.activation),
                form=str(r.activation),
                expr=str(spec.get("expr")),
                params=params,
                trial=r.number,
                value=float(r.value),  # type: ignore[arg-type]
                confirmed=sum(conf) / len(conf) if conf else None,
            )
        )
    return out


def export_code(forms: list[ExportedForm], *, study: str, metric: str, source: str) -> str:
    """Python that registers ``forms`` (``register_formula`` calls), ready to list in ``imports:``.

    Generated code never carries code from data: the docstring is fixed text; every value
    from the study (its name, the command, the metric, the form names, formulas and
    parameters) lands either in a comment, with every character that could end the line
    (or is not printable) escaped by :func:`_comment`, or in an expression position as a
    Python literal built by :func:`_py` (``repr``-based, so it reads back as the same string).
    The study's name is also kept as data: the module's ``STUDY`` constant.

    Args:
        forms: From :func:`best_forms`.
        study: The study's name (for the header).
        metric: The study metric (for the comments).
        source: How the file was made (the command), for the header.
    """
    lines = [
        '"""Activations discovered by a form search of loran-search (the study is named below).',
        "",
        "The values are the search split's (optimistic for the best of many forms); a",
        "confirmed form also states its held-out mean. List this module under `imports:` of a",
        "study (or pass --import) to search or train these forms by name.",
        '"""',
        "",
        f"# Study: {_comment(study)}",
        f"# Made by: {_comment(source)}",
        "",
        "from loran_search.activations import register_formula",
        "",
        f"STUDY = {_py(study)}",
        "",
    ]
    for i, f in enumerate(forms, 1):
        held = f", held-out {f.confirmed:.4f}" if f.confirmed is not None else ""
        note = f"{i}. trial {f.trial}: {metric} {f.value:.4f} (search){held}; {f.form}"
        lines += [
            f"# {_comment(note)}",
            "register_formula(",
            f"    {_py(f.name)},",
            f"    {_py(f.expr)},",
            "    {",
        ]
        for p, d in f.params.items():
            lines.append(f"        {_py(p)}: {_py(d)},")
        lines += ["    },", f"    family={_py(FORM_FAMILY)},", ")", ""]
    return "\n".join(lines).rstrip() + "\n"


def _comment(text: Any) -> str:
    r"""``text`` for one comment line: every non-printable character escaped (``\n``, ``\x85``).

    ``str.isprintable`` is false for every character Python or an editor could take as a line
    end (``\n``, ``\r``, ``\f``, ``\v``, ``\x1c``–``\x1e``, ``\x85``, U+2028, U+2029) and for
    every other control, format or surrogate character, so the comment cannot end early and
    nothing after it becomes code.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _py(value: Any) -> str:
    """A Python literal of ``value`` for the exported module (double quotes, the house style).

    Strings go through ``repr`` (which escapes quotes, backslashes, line ends and every
    non-printable character, so the literal reads back as the same string, lone surrogates
    and astral characters included); a ``repr`` in single quotes is turned into double quotes
    only when the string holds neither quote. Numbers are finite (the search refuses others).
    """
    if isinstance(value, str):
        text = repr(value)
        if text.startswith("'") and '"' not in value:
            text = '"' + text[1:-1] + '"'
        return text
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float) and math.isfinite(value):
        return repr(float(value))
    raise TypeError(f"cannot export {type(value).__name__} {value!r} as a Python literal")
