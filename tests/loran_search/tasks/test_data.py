"""Data loading: embedded splits, local json/csv/parquet files and folders, split errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from loran_search.config import TaskSection
from loran_search.tasks.data import TaskError, load_splits, seeded_split, train_eval_rows


def test_bbc_split_is_stratified_and_seeded() -> None:
    cfg = TaskSection(name="bbc-news", train_size=None, eval_size=None)
    train, test = train_eval_rows(cfg, strat_key="label")
    assert len(train) + len(test) == 2225
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    counts = Counter(r["label"] for r in test)
    assert counts["sports"] == 103 and counts["entertainment"] == 78  # ceil(0.2·511), ceil(0.2·386)
    again, _ = train_eval_rows(cfg, strat_key="label")
    assert [r["id"] for r in again] == [r["id"] for r in train]
    other, _ = train_eval_rows(TaskSection(name="bbc-news", split_seed=1, train_size=None))
    assert [r["id"] for r in other] != [r["id"] for r in train]


def test_subsampling_is_seeded() -> None:
    cfg = TaskSection(name="bbc-news", train_size=20, eval_size=7)
    a = train_eval_rows(cfg, "label")
    b = train_eval_rows(cfg, "label")
    assert [len(x) for x in a] == [20, 7]
    assert [r["id"] for r in a[0]] == [r["id"] for r in b[0]]


def test_aclsum_splits() -> None:
    splits = load_splits(TaskSection(name="aclsum", type="summarization"))
    assert {k: len(v) for k, v in splits.items()} == {"train": 100, "val": 50, "test": 100}
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
        train, test = train_eval_rows(cfg, "label")
        assert (len(train), len(test)) == (16, 4), name
        assert Counter(r["label"] for r in test) == {"pos": 2, "neg": 2}


def test_local_folder_of_splits(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(6)))
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(3)))
    train, test = train_eval_rows(TaskSection(name=str(tmp_path), train_size=None, eval_size=None))
    assert (len(train), len(test)) == (6, 3)
    with pytest.raises(TaskError, match=r"split 'dev' not found.*Available splits: test, train"):
        train_eval_rows(TaskSection(name=str(tmp_path), eval_split="dev"))


def test_empty_split_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in _rows(4)))
    (tmp_path / "test.jsonl").write_text("")
    with pytest.raises(TaskError, match="the eval split 'test' is empty"):
        train_eval_rows(TaskSection(name=str(tmp_path)))
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
        train, test = train_eval_rows(TaskSection(name=str(tmp_path / name), train_size=None))
        assert len(train) + len(test) == 10, name


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
