"""How the report writes a value: numbers, parameter values, table cells, tables, figures.

One home for every formatter of the analysis. The variants differ on purpose, each for one kind
of value: :func:`fmt` a table cell (``digits`` significant digits, ``—`` when missing),
:func:`signed` a gain in a sentence (``+0.0123``), :func:`signed_fixed` a form's gain (four
decimals), :func:`pct` a rate, :func:`format_value` a parameter value, :func:`metric_value` and
:func:`metric_gain` a metric in its natural unit (percent and points for a fraction).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MISSING = "—"

# ---------------------------------------------------------------------------------- numbers


def fmt(x: Any, digits: int = 4) -> str:
    """A number for a table: ``—`` when missing, ``digits`` significant digits otherwise.

    Booleans read ``yes``/``no``, integers in full; anything that is not a number as ``str``.
    """
    if x is None:
        return MISSING
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return MISSING
    return f"{v:.{digits}g}"


def signed(x: Any, digits: int = 3) -> str:
    """A gain with its sign, ``digits`` significant digits (``+0.0123``); ``—`` for ``nan``."""
    v = float(x)
    return MISSING if math.isnan(v) else f"{v:+.{digits}g}"


def signed_fixed(v: Any, decimals: int = 4) -> str:
    """A gain with its sign: ``decimals`` decimals below 10 in size, else 3 significant digits.

    ``+0.0123``, ``+12.3``; ``—`` when missing or not finite.
    """
    try:
        f = float(v)
    except (TypeError, ValueError):
        return MISSING
    if not math.isfinite(f):
        return MISSING
    return f"{f:+.{decimals}f}" if abs(f) < 10 else f"{f:+.3g}"


def formatted(v: float, format_spec: str = ".4f") -> str:
    """``format(v, format_spec)``; ``—`` when ``v`` is not finite."""
    return format(v, format_spec) if math.isfinite(v) else MISSING


def pct(x: float) -> str:
    """``0.25`` → ``25%``; ``—`` for a missing value."""
    return MISSING if x is None or not math.isfinite(x) else f"{100 * x:.0f}%"


def number(v: Any) -> float:
    """``v`` as a float; ``nan`` for ``None``, text and other non-numbers."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def truthy(v: Any) -> bool:
    """Whether ``v`` is a true boolean (``None`` and ``nan`` are not)."""
    return isinstance(v, (bool, np.bool_)) and bool(v)


# ---------------------------------------------------------------------- parameters, metrics


def format_value(value: float) -> str:
    """A short human form of a parameter value (``1e-05``, ``0.003``, ``10000``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}"


def params_text(params: Mapping[str, Any]) -> str:
    """``amplitude=0.001, width=2``: floats to 3 significant digits, anything else as it is."""
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def is_fraction(metric: str) -> bool:
    """Whether ``metric`` is a fraction read in percent and points (accuracy, F1)."""
    m = metric.lower()
    return "acc" in m or "f1" in m


def metric_value(metric: str, x: float) -> str:
    """A metric in its natural unit: ``72.3 %`` for a fraction, 3 significant digits otherwise."""
    return f"{100 * x:.1f} %" if is_fraction(metric) else f"{x:.3g}"


def metric_gain(metric: str, x: float) -> str:
    """A gain: ``−2.2`` (points) or ``+0.0143``; the minus sign is U+2212."""
    text = f"{100 * x:+.1f}" if is_fraction(metric) else f"{x:+.3g}"
    return text.replace("-", "−")


# ------------------------------------------------------------------------- lists of trials


def trial_list(numbers: Iterable[Any]) -> str:
    """Trial numbers as a table cell: ``3,7,12`` (sorted)."""
    return ",".join(str(int(n)) for n in sorted(numbers))


def trial_numbers(text: Any) -> list[int]:
    """The trial numbers of a :func:`trial_list` cell (``""`` and ``None`` hold none)."""
    return [int(n) for n in str(text or "").split(",") if n.strip()]


# ---------------------------------------------------------------------- tables and figures

#: Columns of free text: they wrap, but never to a word per line.
TEXT_COLUMNS = ("note", "failure", "configuration", "config", "ci_method", "first_unstable_config")

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def inline(md: str) -> str:
    """Markdown's inline marks (``**bold**``, ```code```) as HTML; everything else escaped."""
    text = html.escape(md, quote=False)
    text = _CODE.sub(r"<code>\1</code>", text)
    return _BOLD.sub(r"<strong>\1</strong>", text)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (its cells are shown as strings)."""
    if df.empty:
        return "_(none)_"

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def html_table(df: pd.DataFrame) -> str:
    """``df`` as an HTML table in a box that scrolls sideways on its own (cells escaped).

    Free-text columns (:data:`TEXT_COLUMNS`) get the class ``text``: they wrap at a sensible
    minimum width instead of one word per line; every other cell stays on one line.
    """

    def cls(col: Any) -> str:
        name = str(col).lower()
        if name in ("note", "failure"):
            return ' class="text wide"'
        return ' class="text"' if name in TEXT_COLUMNS else ""

    classes = [cls(c) for c in df.columns]
    head = "".join(
        f"<th{k}>{html.escape(str(c))}</th>" for c, k in zip(df.columns, classes, strict=True)
    )
    body = []
    for row in df.itertuples(index=False):
        cells = "".join(
            f"<td{k}>{html.escape(MISSING if _missing(v) else str(v))}</td>"
            for v, k in zip(row, classes, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def json_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """``df`` as JSON-ready rows (pandas' own conversion: ``NaN`` as ``None``)."""
    return json.loads(df.to_json(orient="records")) if len(df) else []


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,…`` URI, for a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
