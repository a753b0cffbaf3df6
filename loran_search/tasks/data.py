"""Rows of a task's train, val and test splits: embedded datasets, local files, or hub datasets.

``task.name`` resolves in this order:

1. an embedded dataset (``bbc-news``, ``aclsum``), built into the asset cache on first use;
2. a local file (``.json``/``.jsonl``/``.csv``/``.parquet``) — one table, split into
   train/val/test by :func:`three_way_split` — or a local folder with one such file per split
   (``train.jsonl``, ``test.csv``, …);
3. a hub dataset name loaded with ``datasets.load_dataset`` (needs the network or the HF cache).

Three splits. The search evaluates on ``task.eval_split`` (default ``val``); the confirmation on
``test``; the training set is the same whichever is evaluated. ``bbc-news`` is one table of
2,225 articles: :func:`seeded_split` with ``task.split_seed`` (stratified, 20 % ``test``: 448
articles, the former 80/20 split's test part exactly), then :func:`carve_val` takes 1/8 of the
remaining stratified ``train`` part as ``val`` (223), leaving 1,554 for ``train`` (the sizes of
any split seed). ``aclsum`` has its own ``train`` (100) / ``val`` (50) / ``test`` (100) papers.
A local single file is split the same way as ``bbc-news`` (stratified by the label column for
classification). A local folder or hub dataset without a validation split (``val``,
``validation``, ``valid`` or ``dev``) gets ``val`` carved from its train split the same way;
this is said in the task's data notes (``RunResult.data["notes"]``).

Example ids. Every row gets a stable id under :data:`ID_KEY` when it is read, before any split
or subsample, so the same example has the same id in every run and process: the ``id`` column
when the table has one with unique values (``bbc-news``: ``label/NNN``, the article's file;
``aclsum``: the paper id, to which the summarization task appends ``/summary column``), else the
row index in its file (a single file: ``"17"``; a folder or hub split: ``"train/17"``).
"""

from __future__ import annotations

import codecs
import difflib
import io
import json
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loran_search.config import TaskSection
from loran_search.errors import LoranSearchError

FILE_TYPES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
SPLIT_ALIASES = {"validation": "val", "valid": "val", "dev": "val", "eval": "test"}
TEST_FRACTION = 0.2
#: Fraction of the (post-test) train part that :func:`carve_val` moves to ``val``.
VAL_FRACTION = 0.125
#: The row key that holds a row's stable example id (see the module docstring).
ID_KEY = "__loran_id__"
VAL_NAMES = ("val", "validation", "valid", "dev")


class TaskError(LoranSearchError, ValueError):
    """Bad task input, reported before any training (what, where, how to fix)."""


def _strata(rows: Sequence[dict[str, Any]], strat_key: str | None) -> list[list[dict[str, Any]]]:
    """Rows grouped by ``str(row[strat_key])`` in sorted order; one-row strata pooled, last."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row[strat_key]) if strat_key else ""].append(row)
    singletons = [g[0] for k, g in sorted(groups.items()) if len(g) == 1]
    strata = [g for _, g in sorted(groups.items()) if len(g) > 1]
    if singletons:  # one-row strata cannot be split: they are split together as one stratum
        strata.append(singletons)
    return strata


def _take(
    rows: Sequence[dict[str, Any]], rng: random.Random, strat_key: str | None, fraction: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(taken, rest)``: per stratum, shuffled by ``rng``, the first ``ceil(fraction·n)``."""
    taken: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for stratum in _strata(rows, strat_key):
        group = list(stratum)
        rng.shuffle(group)
        n = math.ceil(fraction * len(group)) if len(group) > 1 else 0
        taken += group[:n]
        rest += group[n:]
    return taken, rest


def seeded_split(
    rows: Sequence[dict[str, Any]], seed: int, strat_key: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Deterministic train/test split: 20 % test, stratified by ``strat_key`` when given.

    Per stratum (or over all rows), rows are shuffled with ``random.Random(seed)`` and the first
    ``ceil(0.2·n)`` go to ``test``; strata are visited in sorted order (rows whose stratum has one
    row form one extra stratum, last), so the split depends only on the rows' order and ``seed``.
    """
    test, train = _take(rows, random.Random(seed), strat_key, TEST_FRACTION)
    return {"train": train, "test": test}


def carve_val(
    rows: Sequence[dict[str, Any]], seed: int, strat_key: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, val)``: ``val`` is ``ceil(n_s/8)`` rows of every stratum ``s`` of ``rows``.

    The same stratified procedure as :func:`seeded_split` (strata in sorted order, one-row strata
    pooled) with its own generator ``random.Random(f"val:{seed}")``, so carving ``val`` out of a
    train part never changes the ``test`` part it was split from. ``train`` keeps the rows'
    order.
    """
    val, _ = _take(rows, random.Random(f"val:{seed}"), strat_key, VAL_FRACTION)
    chosen = {id(r) for r in val}
    return [r for r in rows if id(r) not in chosen], val


def three_way_split(
    rows: Sequence[dict[str, Any]], seed: int, strat_key: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """``train``/``val``/``test``: :func:`seeded_split`, then :func:`carve_val` of its train part.

    Sizes per stratum of ``n`` rows: ``test = ceil(0.2·n)``, ``val = ceil((n − test)/8)``, the
    rest ``train`` (about 70/10/20); the ``test`` part is exactly :func:`seeded_split`'s.
    """
    two = seeded_split(rows, seed, strat_key)
    train, val = carve_val(two["train"], seed, strat_key)
    return {"train": train, "val": val, "test": two["test"]}


def assign_ids(tables: dict[str, list[dict[str, Any]]], *, single: bool) -> list[str]:
    """Give every row a stable example id under :data:`ID_KEY` (see the module docstring).

    Args:
        tables: ``{split name: rows}`` as read, before any split or subsample (rows are
            changed in place).
        single: One table (a local file): the row index alone, ``"17"``; else ``"split/17"``.

    Returns:
        Notes for the data notes (an ``id`` column whose values are not unique).
    """
    rows = [r for t in tables.values() for r in t]
    ids = [r.get("id") for r in rows]
    if rows and all(v is not None and str(v) != "nan" for v in ids):
        if len({str(v) for v in ids}) == len(ids):
            for r in rows:
                r[ID_KEY] = str(r["id"])
            return []
        note = "the 'id' column has repeated values: examples are identified by row index"
    else:
        note = ""
    for name, table in tables.items():
        for i, r in enumerate(table):
            r[ID_KEY] = str(i) if single else f"{name}/{i}"
    return [note] if note else []


def row_id(row: dict[str, Any]) -> str:
    """The stable example id of a loaded row (:func:`assign_ids`)."""
    return str(row[ID_KEY])


HEAD_BYTES = 1 << 16  # what check_source reads of each data file


def _not_utf8(raw: bytes, err: UnicodeDecodeError) -> str:
    """``byte 0xe9 at offset 123 (line 4)`` for a decode error of ``raw``."""
    line = raw[: err.start].count(b"\n") + 1
    return f"byte 0x{raw[err.start]:02x} at offset {err.start} (line {line}) cannot be decoded"


def _text_problem(raw: bytes, *, complete: bool) -> str | None:
    """Why ``raw`` (a whole file, or its first bytes) is not UTF-8 text, or ``None``."""
    nul = raw.find(b"\0")
    if nul >= 0:
        return f"is binary, not text (a NUL byte at offset {nul})"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=complete)
    except UnicodeDecodeError as err:
        return f"is not UTF-8 text: {_not_utf8(raw, err)}"
    return None


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, a BOM allowed); :class:`TaskError` when it is not text."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise TaskError(f"task.name: cannot read {path}: {err.strerror or err}.") from err
    problem = _text_problem(raw, complete=True)
    if problem:
        raise TaskError(
            f"task.name: the data file {path} {problem}.",
            fix="Save it as UTF-8 text (JSON lines, JSON or CSV), or convert it to Parquet.",
        )
    return raw.decode("utf-8-sig")


def _json_rows(path: Path, text: str, *, lines: bool) -> list[dict[str, Any]]:
    """Rows of a JSON list (or ``{"data": [...]}``) or of JSON lines; each row an object."""
    if lines:
        rows: list[Any] = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise TaskError(
                    f"task.name: {path}: line {n} is not valid JSON ({err.msg}, column "
                    f"{err.colno}).",
                    fix="Write one JSON object per line.",
                ) from err
            if not isinstance(rows[-1], dict):
                raise TaskError(
                    f"task.name: {path}: line {n} is a JSON {type(rows[-1]).__name__}, not an "
                    "object.",
                    fix='Write one JSON object per line, e.g. {"text": ..., "label": ...}.',
                )
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise TaskError(
            f"task.name: {path}: not valid JSON ({err.msg}, line {err.lineno}, column "
            f"{err.colno}).",
            fix="Write a JSON list of records, or one JSON object per line (.jsonl).",
        ) from err
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if not isinstance(data, list):
        raise TaskError(f"{path}: expected a JSON list of records (or JSON lines)")
    bad = next((i for i, r in enumerate(data) if not isinstance(r, dict)), None)
    if bad is not None:
        raise TaskError(
            f"task.name: {path}: record {bad} is a JSON {type(data[bad]).__name__}, not an object.",
            fix='Make every record an object, e.g. {"text": ..., "label": ...}.',
        )
    return data


def _read_table(path: Path) -> list[dict[str, Any]]:
    """The rows of one data file; every problem is a :class:`TaskError` naming the file."""
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise TaskError(
            f"task.name {str(path)!r}: unsupported file type {path.suffix!r}; use one of "
            + ", ".join(sorted(FILE_TYPES))
        )
    if kind == "json":
        text = _read_text(path)
        if path.suffix.lower() == ".jsonl":
            return _json_rows(path, text, lines=True)
        try:
            return _json_rows(path, text, lines=False)
        except TaskError:
            if not text.lstrip().startswith("{"):
                raise
            return _json_rows(path, text, lines=True)  # JSON lines in a .json file
    import pandas as pd

    try:
        if kind == "csv":
            frame = pd.read_csv(io.StringIO(_read_text(path)))
        else:
            frame = pd.read_parquet(path)
    except TaskError:
        raise
    except Exception as err:  # pandas/pyarrow raise many types; all mean "cannot read it"
        raise TaskError(
            f"task.name: cannot read {path} as {kind.upper()}: {type(err).__name__}: "
            f"{str(err)[:200]}",
            fix=f"Check that it is a valid {kind.upper()} file.",
        ) from err
    return frame.to_dict(orient="records")


def _file_problem(path: Path) -> str | None:
    """What is wrong with one data file, reading only its first bytes; ``None`` if nothing."""
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        return f"unsupported file type {path.suffix!r}; use one of " + ", ".join(sorted(FILE_TYPES))
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
            complete = len(head) < HEAD_BYTES or not f.read(1)
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if not head.strip():
        return "is empty"
    if kind == "parquet":
        return None if head.startswith(b"PAR1") else "is not a Parquet file (no PAR1 header)"
    problem = _text_problem(head, complete=complete)
    return f"{problem}; save it as UTF-8 text" if problem else None


def check_source(cfg: TaskSection) -> list[str]:
    """Problems with ``task.name`` found without loading the data (cheap; no pandas, no hub).

    Embedded datasets: the kind and task type. Local files and folders: that they exist, can be
    read, hold data files of a supported type and that the first bytes of each are UTF-8 text
    (or a Parquet header). Hub names are not checked (that needs the network).

    Args:
        cfg: The ``task:`` section.

    Returns:
        One message per problem (empty when none is found).
    """
    from loran_search import assets

    spec = assets.ASSETS.get(cfg.name)
    if spec is not None:
        if spec.kind != "dataset":
            return [f"{cfg.name!r} is an embedded {spec.kind}, not a dataset."]
        if spec.task_type != cfg.type:
            return [
                f"{cfg.name!r} is a {spec.task_type} dataset but task.type is {cfg.type!r}; set "
                f"task.type: {spec.task_type} or choose another dataset."
            ]
        return []
    path = Path(cfg.name).expanduser()
    if not path.exists():
        if path.suffix.lower() in FILE_TYPES or cfg.name.startswith((".", "/", "~")):
            return [
                f"no such file or folder {str(path)!r} (relative paths start at the working "
                f"directory, {Path.cwd()}). Check the path."
            ]
        return []  # a hub dataset name
    if path.is_file():
        problem = _file_problem(path)
        return [f"the data file {str(path)!r} {problem}."] if problem else []
    try:
        files = [p for p in sorted(path.iterdir()) if p.suffix.lower() in FILE_TYPES]
    except OSError as err:
        return [f"the folder {str(path)!r} cannot be read: {err.strerror or err}."]
    if not files:
        return [
            f"the folder {str(path)!r} holds no data files; put one file per split in it "
            "(train.jsonl, test.jsonl, … or .json/.csv/.parquet)."
        ]
    out = []
    for p in files:
        problem = _file_problem(p)
        if problem:
            out.append(f"the data file {str(p)!r} {problem}.")
    return out


def available_splits(cfg: TaskSection) -> list[str] | None:
    """The split names of a dataset, known without loading any data; ``None`` when unknown.

    Embedded datasets and a local single file have ``train``/``val``/``test`` (see the module
    docstring); a local folder has one split per data file (its stem), plus ``val`` carved from
    the train split when it has no validation split; a hub dataset's splits are not known
    offline (``None``). (A control task's splits are :data:`loran_search.tasks.control.\
SPLIT_OFFSETS`.)
    """
    from loran_search import assets

    if cfg.name in assets.ASSETS:
        return ["train", "val", "test"]
    path = Path(cfg.name).expanduser()
    if path.is_file():
        return ["train", "val", "test"]
    if path.is_dir():
        try:
            stems = [p.stem for p in sorted(path.iterdir()) if p.suffix.lower() in FILE_TYPES]
        except OSError:
            return None
        if stems and not any(name in stems for name in VAL_NAMES):
            stems.append("val")
        return stems or None
    return None


def find_split(split: str, available: Sequence[str]) -> str | None:
    """The name under which ``available`` holds ``split`` (an alias resolved), or ``None``."""
    if split in available:
        return split
    alias = SPLIT_ALIASES.get(split)
    if alias in available:
        return alias
    for full, short in SPLIT_ALIASES.items():  # "val" asked, "validation" present
        if short == split and full in available:
            return full
    return None


def _split_name(split: str, available: Sequence[str], where: str) -> str:
    found = find_split(split, available)
    if found is not None:
        return found
    close = difflib.get_close_matches(split, list(available), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise TaskError(
        f"{where}: split {split!r} not found.{hint} Available splits: {', '.join(available)}."
    )


def _strat(rows: Sequence[dict[str, Any]], strat_key: str | None) -> str | None:
    # a missing column is reported by the task with a clear message, not here
    return strat_key if strat_key and rows and strat_key in rows[0] else None


def _embedded(cfg: TaskSection, notes: list[str]) -> dict[str, list[dict[str, Any]]] | None:
    from loran_search import assets

    spec = assets.ASSETS.get(cfg.name)
    if spec is None:
        return None
    if spec.kind != "dataset":
        raise TaskError(f"task.name {cfg.name!r} is an embedded model, not a dataset.")
    if spec.task_type != cfg.type:
        raise TaskError(
            f"task.name {cfg.name!r} is a {spec.task_type} dataset but task.type is "
            f"{cfg.type!r}; set task.type: {spec.task_type} or choose another dataset."
        )
    root = assets.ensure(cfg.name)
    if cfg.name == "bbc-news":
        rows = _read_table(root / "data.jsonl")
        notes += assign_ids({"data": rows}, single=True)
        return three_way_split(rows, cfg.split_seed, strat_key="label")
    tables = {s: _read_table(root / f"{s}.jsonl") for s in ("train", "val", "test")}
    notes += assign_ids(tables, single=False)
    return tables


def _with_val(
    tables: dict[str, list[dict[str, Any]]],
    cfg: TaskSection,
    strat_key: str | None,
    notes: list[str],
) -> dict[str, list[dict[str, Any]]]:
    """Carve ``val`` out of the train split when there is no validation split (see above)."""
    if any(name in tables for name in VAL_NAMES):
        return tables
    try:
        train_name = _split_name(cfg.train_split, list(tables), "")
    except TaskError:
        return tables  # the unknown train split is reported by train_eval_rows
    key = _strat(tables[train_name], strat_key)
    train, val = carve_val(tables[train_name], cfg.split_seed, key)
    out = {**tables, train_name: train, "val": val}
    how = f", stratified by {key!r}" if key else ""
    notes.append(
        f"no validation split: 'val' is {len(val)} rows carved from {train_name!r} "
        f"(1/{round(1 / VAL_FRACTION)} per stratum{how}, seeded by task.split_seed = "
        f"{cfg.split_seed}); {len(train)} rows stay in {train_name!r}"
    )
    return out


def _local(
    path: Path, cfg: TaskSection, strat_key: str | None, notes: list[str]
) -> dict[str, list[dict]]:
    if path.is_file():
        rows = _read_table(path)
        notes += assign_ids({path.stem: rows}, single=True)
        key = _strat(rows, strat_key)
        out = three_way_split(rows, cfg.split_seed, strat_key=key)
        how = f", stratified by {key!r}" if key else ""
        notes.append(
            f"one table of {len(rows)} rows split into train/val/test "
            f"{len(out['train'])}/{len(out['val'])}/{len(out['test'])} (test 20 %, val 1/8 of "
            f"the rest{how}, seeded by task.split_seed = {cfg.split_seed})"
        )
        return out
    files = {p.stem: p for p in sorted(path.iterdir()) if p.suffix.lower() in FILE_TYPES}
    if not files:
        raise TaskError(
            f"task.name {str(path)!r} is a folder without data files; put one file per split "
            "in it (train.jsonl, test.jsonl, … or .json/.csv/.parquet)."
        )
    tables = {name: _read_table(p) for name, p in files.items()}
    notes += assign_ids(tables, single=False)
    return _with_val(tables, cfg, strat_key, notes)


def _hub(cfg: TaskSection, strat_key: str | None, notes: list[str]) -> dict[str, list[dict]]:
    import datasets

    try:
        dd = datasets.load_dataset(cfg.name)
    except Exception as err:  # datasets raises many types; all mean "cannot get it"
        from loran_search import assets

        embedded = sorted(n for n, s in assets.ASSETS.items() if s.kind == "dataset")
        close = difflib.get_close_matches(cfg.name, embedded, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TaskError(
            f"Unknown dataset {cfg.name!r} (task.name): not embedded, not a local file or "
            f"folder, and the hub could not load it ({type(err).__name__}: "
            f"{str(err)[:200]}).{hint} Embedded datasets: {', '.join(embedded)} "
            "(`loran-search assets list`)."
        ) from err
    out: dict[str, list[dict[str, Any]]] = {}
    for split, ds in dd.items():
        rows = ds.to_list()
        feats = ds.features
        for col, feat in feats.items():  # ClassLabel ints → their names
            names = getattr(feat, "names", None)
            if names:
                for r in rows:
                    r[col] = names[r[col]]
        out[split] = rows
    notes += assign_ids(out, single=False)
    return _with_val(out, cfg, strat_key, notes)


def load_splits(
    cfg: TaskSection, strat_key: str | None = None, notes: list[str] | None = None
) -> dict[str, list[dict]]:
    """All splits of ``cfg.name`` as lists of row dicts (see the module docstring).

    Args:
        cfg: The ``task:`` section.
        strat_key: The label column of a classification task (``val``/``test`` are carved
            stratified by it).
        notes: Appended to: how splits were made, how ids were assigned.

    Returns:
        ``{split: rows}``, every row with its stable id under :data:`ID_KEY`.
    """
    notes = [] if notes is None else notes
    embedded = _embedded(cfg, notes)
    if embedded is not None:
        return embedded
    path = Path(cfg.name).expanduser()
    if path.exists():
        return _local(path, cfg, strat_key, notes)
    if path.suffix.lower() in FILE_TYPES or cfg.name.startswith((".", "/", "~")):
        raise TaskError(f"task.name {cfg.name!r}: no such file or folder.")
    return _hub(cfg, strat_key, notes)


@dataclass
class TaskRows:
    """The rows a task is built from.

    Attributes:
        train: Training rows (subsampled to ``task.train_size``).
        eval: Evaluation rows of ``eval_split`` (subsampled to ``task.eval_size``).
        train_split: The train split's name as found (an alias resolved).
        eval_split: The evaluated split's name as found (``validation`` → ``val`` …).
        notes: How the splits were made (carved ``val``, ids by row index, …).
    """

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    train_split: str
    eval_split: str
    notes: list[str] = field(default_factory=list)


def task_rows(cfg: TaskSection, strat_key: str | None = None) -> TaskRows:
    """The train and eval rows, subsampled to ``train_size``/``eval_size`` (seeded).

    Subsampling draws ``size`` row indices with ``random.Random(split_seed)`` (train) or
    ``random.Random(split_seed + 1)`` (eval) and keeps the rows in their split order.

    Raises:
        TaskError: Unknown split, or an empty split after loading.
    """
    notes: list[str] = []
    splits = load_splits(cfg, strat_key, notes)
    where = f"task.name {cfg.name!r}"
    train_name = _split_name(cfg.train_split, list(splits), where + " (task.train_split)")
    eval_name = _split_name(cfg.eval_split, list(splits), where + " (task.eval_split)")
    out = []
    for name, size, key in (
        (train_name, cfg.train_size, "train"),
        (eval_name, cfg.eval_size, "eval"),
    ):
        rows = list(splits[name])
        if size is not None and size < len(rows):
            rng = random.Random(cfg.split_seed + (0 if key == "train" else 1))
            idx = sorted(rng.sample(range(len(rows)), size))
            rows = [rows[i] for i in idx]
        if not rows or (size is not None and size <= 0):
            raise TaskError(
                f"{where}: the {key} split {name!r} is empty"
                + (f" (task.{key}_size = {size})" if size is not None and size <= 0 else "")
                + "; give it rows or choose another split."
            )
        out.append(rows)
    return TaskRows(out[0], out[1], train_name, eval_name, notes)


def train_eval_rows(
    cfg: TaskSection, strat_key: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train rows, eval rows)`` of :func:`task_rows`."""
    rows = task_rows(cfg, strat_key)
    return rows.train, rows.eval


def require_columns(rows: Sequence[dict[str, Any]], columns: dict[str, str], where: str) -> None:
    """Raise :class:`TaskError` when a configured column is missing from the rows.

    Args:
        rows: Loaded rows.
        columns: ``{config key: column name}``, e.g. ``{"task.text_column": "text"}``.
        where: Dataset description for the message.
    """
    present = [k for k in rows[0] if k != ID_KEY] if rows else []
    for key, col in columns.items():
        if col not in present:
            close = difflib.get_close_matches(col, present, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TaskError(
                f"{where}: column {col!r} ({key}) not found.{hint} Columns: "
                f"{', '.join(map(str, present))}. Set {key} to one of them."
            )
