"""Data loading: embedded splits, local json/csv/parquet files and folders, split errors, ids."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from loran_search.config import TaskSection
from loran_search.tasks.data import (
    ID_KEY,
    TaskError,
    load_splits,
    require_columns,
    row_id,
    seeded_split,
    task_rows,
    train_eval_rows,
)

ROOT = Path(__file__).resolve().parents[3]


def _sha(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def test_bbc_split_is_stratified_and_seeded() -> None:
    cfg = TaskSection(name="bbc-news", eval_split="test", train_size=None, eval_size=None)
    train, test = train_eval_rows(cfg, strat_key="label")
    assert (len(train), len(test)) == (1554, 448)
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    counts = Counter(r["label"] for r in test)
    assert counts["sports"] == 103 and counts["entertainment"] == 78  # ceil(0.2·511), ceil(0.2·386)
    again, _ = train_eval_rows(cfg, strat_key="label")
    assert [r["id"] for r in again] == [r["id"] for r in train]
    other, _ = train_eval_rows(TaskSection(name="bbc-news", split_seed=1, train_size=None))
    assert [r["id"] for r in other] != [r["id"] for r in train]


# sha256 of the bbc-news test ids, in order, as the 80/20 train/test split made them before val
# existed (split_seed 0): all 448, and the default eval_size = 256 subsample of them
BBC_TEST_SHA = "68caa459f3fde6af5321151bcaf850960ad21e0012ae435d467901ca12001674"
BBC_TEST_256_SHA = "de06a25cbc9988a8e7981445b4cd01025de01399f4d4be7996fac5491eac0b1d"


def test_bbc_three_splits_keep_the_old_test_part_and_are_disjoint() -> None:
    splits = load_splits(TaskSection(name="bbc-news"), "label")
    assert {k: len(v) for k, v in splits.items()} == {"train": 1554, "val": 223, "test": 448}
    ids = {k: [r["id"] for r in v] for k, v in splits.items()}
    assert _sha(ids["test"]) == BBC_TEST_SHA  # the same examples, ids and order as before
    sub = task_rows(TaskSection(name="bbc-news", eval_split="test"), "label")
    assert _sha([r["id"] for r in sub.eval]) == BBC_TEST_256_SHA and sub.eval_split == "test"
    train, val, test = (set(ids[k]) for k in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    assert len(train | val | test) == 2225
    # val is 1/8 of the old train part, per label: ceil((n − ceil(0.2·n))/8)
    assert Counter(r["label"] for r in splits["val"]) == {
        "business": 51,
        "entertainment": 39,
        "politics": 42,
        "sports": 51,
        "tech": 40,
    }
    for seed in (1, 7):
        other = load_splits(TaskSection(name="bbc-news", split_seed=seed), "label")
        assert {k: len(v) for k, v in other.items()} == {"train": 1554, "val": 223, "test": 448}
        assert [r["id"] for r in other["val"]] != ids["val"]
    # the search's default evaluates on val
    default = task_rows(TaskSection(name="bbc-news", eval_size=None), "label")
    assert default.eval_split == "val" and [r["id"] for r in default.eval] == ids["val"]


def test_subsampling_is_seeded() -> None:
    cfg = TaskSection(name="bbc-news", train_size=20, eval_size=7)
    a = train_eval_rows(cfg, "label")
    b = train_eval_rows(cfg, "label")
    assert [len(x) for x in a] == [20, 7]
    assert [r["id"] for r in a[0]] == [r["id"] for r in b[0]]


def test_aclsum_splits() -> None:
    splits = load_splits(TaskSection(name="aclsum", type="summarization"))
    assert {k: len(v) for k, v in splits.items()} == {"train": 100, "val": 50, "test": 100}
    ids = [row_id(r) for v in splits.values() for r in v]
    assert len(set(ids)) == 250 and ids[0] == splits["train"][0]["id"]  # the paper ids
    _, ev = train_eval_rows(
        TaskSection(name="aclsum", type="summarization", eval_split="validation", eval_size=None)
    )
    assert len(ev) == 50  # 'validation' → 'val'


def _rows(n: int) -> list[dict]:
    return [{"text": f"item {i}", "label": "pos" if i % 2 else "neg"} for i in range(n)]


def test_local_jsonl_json_csv_parquet(tmp_path: Path) -> None:
    import pandas as pd

    rows = _rows(20)
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "d.json").write_text(json.dumps(rows))
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.json", "d.csv", "d.parquet"):
        cfg = TaskSection(name=str(tmp_path / name), train_size=None, eval_size=None)
        rows = task_rows(replace(cfg, eval_split="test"), "label")
        assert (len(rows.train), len(rows.eval)) == (14, 4), name
        assert Counter(r["label"] for r in rows.eval) == {"pos": 2, "neg": 2}
        val = task_rows(cfg, "label")  # default: val, 1/8 of the 16 non-test rows per label
        assert val.eval_split == "val" and Counter(r["label"] for r in val.eval) == {
            "pos": 1,
            "neg": 1,
        }
        assert [r["text"] for r in val.train] == [r["text"] for r in rows.train]
        (note,) = val.notes
        assert "split into train/val/test 14/2/4" in note and "stratified by 'label'" in note
        assert {row_id(r) for r in val.eval + val.train + rows.eval} == {str(i) for i in range(20)}


def test_local_folder_of_splits(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(6)))
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(3)))
    cfg = TaskSection(name=str(tmp_path), train_size=None, eval_size=None, eval_split="test")
    train, test = train_eval_rows(cfg)
    assert (len(train), len(test)) == (5, 3)  # no val split: 1 of the 6 train rows carved
    with pytest.raises(TaskError, match=r"split 'hold' not found.*Available splits: test, train"):
        train_eval_rows(TaskSection(name=str(tmp_path), eval_split="hold"))


def test_a_folder_without_val_gets_one_carved_from_train(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(32)))
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(6)))
    rows = task_rows(TaskSection(name=str(tmp_path), train_size=None, eval_size=None), "label")
    assert rows.eval_split == "val" and (len(rows.train), len(rows.eval)) == (28, 4)
    assert Counter(r["label"] for r in rows.eval) == {"pos": 2, "neg": 2}  # stratified
    assert not {row_id(r) for r in rows.train} & {row_id(r) for r in rows.eval}
    assert all(row_id(r).startswith("train/") for r in rows.eval)  # index in train.jsonl
    (note,) = rows.notes
    assert "no validation split: 'val' is 4 rows carved from 'train'" in note
    assert "stratified by 'label'" in note and "task.split_seed = 0" in note
    # a folder that has one (under any of its names) is left alone
    (tmp_path / "validation.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(5)))
    rows = task_rows(TaskSection(name=str(tmp_path), train_size=None, eval_size=None), "label")
    assert rows.eval_split == "validation" and len(rows.train) == 32 and not rows.notes


def test_empty_split_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(4)))
    (tmp_path / "test.jsonl").write_text("")
    with pytest.raises(TaskError, match="the eval split 'test' is empty"):
        train_eval_rows(TaskSection(name=str(tmp_path), eval_split="test"))
    with pytest.raises(TaskError, match=r"task\.train_size = 0"):
        train_eval_rows(TaskSection(name="bbc-news", train_size=0))
    bad = tmp_path / "x.txt"
    bad.write_text("hi")
    with pytest.raises(TaskError, match=r"unsupported file type '\.txt'"):
        train_eval_rows(TaskSection(name=str(bad)))
    with pytest.raises(TaskError, match="no such file or folder"):
        train_eval_rows(TaskSection(name=str(tmp_path / "missing.csv")))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(TaskError, match="folder without data files"):
        train_eval_rows(TaskSection(name=str(tmp_path / "empty_dir")))


def test_unknown_dataset_did_you_mean() -> None:
    with pytest.raises(TaskError, match=r"Unknown dataset 'bbc-new'.*Did you mean 'bbc-news'\?"):
        train_eval_rows(TaskSection(name="bbc-new"))


def test_task_type_mismatch_for_embedded() -> None:
    with pytest.raises(TaskError, match=r"is a summarization dataset but task\.type is"):
        train_eval_rows(TaskSection(name="aclsum", type="classification"))


def test_seeded_split_tiny_groups() -> None:
    out = seeded_split([{"l": "a"}, {"l": "b"}, {"l": "b"}], 0, "l")
    assert len(out["train"]) == 1 + 1 and len(out["test"]) == 1  # 'a' alone: pooled, kept
    unique = seeded_split([{"l": str(i)} for i in range(10)], 0, "l")
    assert len(unique["test"]) == 2  # all-singleton strata are split together


# -- reading a file that is not what it says: a TaskError naming the file, never a traceback ---


def _jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        (
            "d.jsonl",
            b'{"text": "caf\xe9", "label": "a"}\n',
            r"is not UTF-8 text: byte 0xe9 at offset 13",
        ),
        ("d.json", b"\x00\x00binary", r"is binary, not text \(a NUL byte at offset 0\)"),
        (
            "d.csv",
            b"text,label\ncaf\xe9,a\n",
            r"is not UTF-8 text: byte 0xe9 at offset 14 \(line 2\)",
        ),
        ("d.jsonl", b'{"text": "a", "label": "x"}\n{"text": oops}\n', r"line 2 is not valid JSON"),
        (
            "d.jsonl",
            b'{"text": "a", "label": "x"}\n[1, 2]\n',
            r"line 2 is a JSON list, not an object",
        ),
        ("d.json", b'[{"text": "a"}, 3]', r"record 1 is a JSON int, not an object"),
        ("d.json", b'[{"text": "a"},', r"not valid JSON \(Expecting value, line 1"),
        ("d.parquet", b"PAR1 not really parquet", r"cannot read .*d\.parquet as PARQUET"),
    ],
)
def test_bad_local_files_raise_task_errors(
    tmp_path: Path, name: str, content: bytes, what: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TaskError, match=what) as info:
        train_eval_rows(TaskSection(name=str(path)))
    assert str(path) in str(info.value)


def test_a_bad_byte_beyond_the_checked_head_is_still_a_task_error(tmp_path: Path) -> None:
    from loran_search.tasks import check_source

    rows = _jsonl([{"text": "x" * 100, "label": str(i % 2)} for i in range(1000)])  # > 64 KiB
    path = tmp_path / "late.jsonl"
    path.write_bytes(rows + b'\n{"text": "caf\xe9", "label": "0"}\n')
    assert check_source(TaskSection(name=str(path))) == []  # the cheap check reads the head only
    with pytest.raises(TaskError, match=rf"byte 0xe9 at offset {len(rows) + 1 + 13} \(line 1001\)"):
        train_eval_rows(TaskSection(name=str(path)))


def test_bom_and_a_pretty_printed_json_object_are_read(tmp_path: Path) -> None:
    rows = _rows(10)
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + _jsonl(rows))
    (tmp_path / "pretty.json").write_text(json.dumps({"data": rows}, indent=2))
    for name in ("bom.jsonl", "pretty.json"):
        splits = load_splits(TaskSection(name=str(tmp_path / name), train_size=None))
        assert sum(len(v) for v in splits.values()) == 10, name


def test_check_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loran_search.tasks import check_source

    monkeypatch.chdir(tmp_path)
    assert check_source(TaskSection(name="bbc-news")) == []
    assert check_source(TaskSection(name="SetFit/20_newsgroups")) == []  # hub: not checked
    (msg,) = check_source(TaskSection(name="aclsum"))
    assert "is a summarization dataset but task.type is 'classification'" in msg
    (msg,) = check_source(TaskSection(name="glassllm"))
    assert "is an embedded model, not a dataset" in msg
    (msg,) = check_source(TaskSection(name="data/missing.jsonl"))
    assert "no such file or folder 'data/missing.jsonl'" in msg and str(tmp_path) in msg
    (tmp_path / "d.txt").write_text("hi")
    (msg,) = check_source(TaskSection(name="d.txt"))
    assert "unsupported file type '.txt'" in msg
    (tmp_path / "splits").mkdir()
    (msg,) = check_source(TaskSection(name="splits"))
    assert "holds no data files" in msg
    (tmp_path / "splits" / "train.jsonl").write_bytes(_jsonl(_rows(4)))
    (tmp_path / "splits" / "test.parquet").write_bytes(b"not parquet")
    (msg,) = check_source(TaskSection(name="splits"))
    assert "test.parquet' is not a Parquet file" in msg


# -- stable example ids --------------------------------------------------------------------------


def test_ids_from_the_id_column_else_the_row_index(tmp_path: Path) -> None:
    rows = [{"id": f"ex-{i}", **r} for i, r in enumerate(_rows(12))]
    (tmp_path / "with_id.jsonl").write_bytes(_jsonl(rows))
    (tmp_path / "no_id.jsonl").write_bytes(_jsonl(_rows(12)))
    dup = [{"id": i % 3, **r} for i, r in enumerate(_rows(12))]
    (tmp_path / "dup_id.jsonl").write_bytes(_jsonl(dup))

    def ids(name: str) -> tuple[set[str], list[str]]:
        notes: list[str] = []
        splits = load_splits(TaskSection(name=str(tmp_path / name)), "label", notes)
        return {row_id(r) for v in splits.values() for r in v}, notes

    assert ids("with_id.jsonl")[0] == {f"ex-{i}" for i in range(12)}
    assert ids("no_id.jsonl")[0] == {str(i) for i in range(12)}
    got, notes = ids("dup_id.jsonl")
    assert got == {str(i) for i in range(12)}
    assert any("'id' column has repeated values" in n for n in notes)
    # the id key is bookkeeping, never offered as a column
    train = load_splits(TaskSection(name=str(tmp_path / "no_id.jsonl")))["train"]
    with pytest.raises(TaskError) as info:
        require_columns(train, {"task.text_column": "txt"}, "here")
    assert ID_KEY not in str(info.value) and "Columns: text, label" in str(info.value)


_IDS_SCRIPT = """
import json, sys
from loran_search.config import TaskSection
from loran_search.tasks.data import row_id, task_rows
out = {}
for name, split in (("bbc-news", "val"), ("bbc-news", "test"), (sys.argv[1], "val")):
    rows = task_rows(TaskSection(name=name, eval_split=split, eval_size=40), "label")
    out[f"{name}:{split}"] = sorted(row_id(r) for r in rows.eval)
print(json.dumps(out))
"""


def test_ids_are_the_same_in_every_process(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(
        "text,label\n" + "".join(f"item {i},{'ab'[i % 2]}\n" for i in range(60))
    )
    runs = []
    for hash_seed in ("1", "2"):  # different str hashing: nothing may depend on it
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", _IDS_SCRIPT, str(tmp_path / "d.csv")],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
        )
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]
    here = {
        f"bbc-news:{s}": sorted(
            row_id(r)
            for r in task_rows(
                TaskSection(name="bbc-news", eval_split=s, eval_size=40), "label"
            ).eval
        )
        for s in ("val", "test")
    }
    assert all(runs[0][k] == v for k, v in here.items())
    assert len(runs[0]["bbc-news:val"]) == 40 and not set(runs[0]["bbc-news:val"]) & set(
        runs[0]["bbc-news:test"]
    )
    assert all("/" in i for i in runs[0]["bbc-news:val"])  # label/NNN, the article's file
