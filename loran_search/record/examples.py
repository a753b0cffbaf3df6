"""The per-example outcomes of a trial, stored column-wise and in parts (``examples.<seed>``).

The layout is the package docstring's *Examples*: one seed's rows as columns, split into parts
under :data:`~loran_search.record.keys.EXAMPLES_CHUNK_CHARS` characters each when too long, and
joined back by :func:`read_examples` (a seed with missing or incomplete parts reads as absent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from loran_search.record.keys import EXAMPLES_CHUNK_CHARS, EXAMPLES_PREFIX
from loran_search.record.values import _round


def examples_columns(rows: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Per-example dicts as columns ``{"id": [...], field: [...]}`` (see *Examples*).

    ``id`` comes first and is a string; the other fields in first-seen order, a row without a
    field gets ``None`` there; values as :func:`_round` stores them.
    """
    names: list[str] = ["id"]
    for row in rows:
        for k in row:
            if str(k) not in names:
                names.append(str(k))
    cols: dict[str, list[Any]] = {n: [] for n in names}
    for row in rows:
        plain = {str(k): v for k, v in row.items()}
        cols["id"].append(None if plain.get("id") is None else str(plain["id"]))
        for n in names[1:]:
            cols[n].append(_round(plain.get(n)))
    return cols


def _json_len(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def examples_attrs(
    seed: Any, rows: list[Mapping[str, Any]], *, limit: int = EXAMPLES_CHUNK_CHARS
) -> dict[str, Any]:
    """The user attrs of one seed's per-example outcomes (``examples.<seed>`` [+ parts]).

    Args:
        seed: The seed (its string is the key).
        rows: ``RunResult.examples``: one dict per example with its stable ``id``.
        limit: The most JSON characters per user attr (:data:`EXAMPLES_CHUNK_CHARS`).

    Returns:
        ``{"examples.<seed>": columns}`` when it fits, else ``{"examples.<seed>.0": part, …,
        "examples.<seed>": {"parts": n, "rows": m}}`` in that order (set them in order: the
        index last). ``{}`` for no rows.
    """
    if not rows:
        return {}
    key = f"{EXAMPLES_PREFIX}{seed}"
    cols = examples_columns(rows)
    total = _json_len(cols)
    if total <= limit:
        return {key: cols}
    n = len(rows)
    out: dict[str, Any] = {}
    start, part = 0, 0
    per = max(1, int(n * limit / total * 0.9))  # a first guess, halved until a part fits
    while start < n:
        size = min(per, n - start)
        while True:
            chunk = {c: v[start : start + size] for c, v in cols.items()}
            if _json_len(chunk) <= limit or size == 1:
                break
            size = max(1, size // 2)
        out[f"{key}.{part}"] = chunk
        start += size
        part += 1
    out[key] = {"parts": part, "rows": n}
    return out


def is_examples_key(key: str) -> bool:
    """Whether a user attr key is one of the ``examples.*`` attrs."""
    return key.startswith(EXAMPLES_PREFIX)


def read_examples(user_attrs: Mapping[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """``{"<seed>": columns}`` from a trial's user attrs, parts joined (see *Examples*).

    A seed whose value is not a columnar mapping, whose parts are incomplete or whose columns
    differ in length is left out; never raises.
    """
    out: dict[str, dict[str, list[Any]]] = {}
    for key, value in user_attrs.items():
        if not isinstance(key, str) or not key.startswith(EXAMPLES_PREFIX):
            continue
        seed = key[len(EXAMPLES_PREFIX) :]
        if not seed or "." in seed or not isinstance(value, Mapping):
            continue  # a part (``examples.<seed>.<k>``) is read with its index
        if "id" in value:
            cols = _columns(value)
        elif isinstance(value.get("parts"), int) and not isinstance(value.get("parts"), bool):
            parts = [user_attrs.get(f"{key}.{k}") for k in range(int(value["parts"]))]
            cols = _join(parts)
            rows = value.get("rows")
            if cols is not None and isinstance(rows, int) and len(cols["id"]) != rows:
                cols = None
        else:
            cols = None
        if cols is not None:
            out[seed] = cols
    return out


def _columns(value: Any) -> dict[str, list[Any]] | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("id"), list):
        return None
    cols = {str(k): list(v) for k, v in value.items() if isinstance(v, list)}
    n = len(cols["id"])
    if len(cols) != len(value) or any(len(v) != n for v in cols.values()):
        return None
    return cols


def _join(parts: list[Any]) -> dict[str, list[Any]] | None:
    joined: dict[str, list[Any]] | None = None
    for part in parts:
        cols = _columns(part)
        if cols is None:
            return None
        if joined is None:
            joined = {k: list(v) for k, v in cols.items()}
        elif set(cols) != set(joined):
            return None
        else:
            for k, v in cols.items():
                joined[k].extend(v)
    return joined
