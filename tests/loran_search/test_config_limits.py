"""Small files that would exhaust memory or recursion are refused fast (issue 18, probe 2 and 10).

A "billion laughs" study (YAML anchors and aliases ten levels deep), a study file beyond 1 MiB
and nesting thousands of levels deep (in the file or a ``--set``) are refused before anything is
built, in well under a second, with a message naming the limit and the fix. Nothing here
allocates more than a few megabytes: the refusals happen before the expansion.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loran_search.cli import main
from loran_search.config import (
    MAX_STUDY_FILE_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    YamlLimitError,
    check_yaml_limits,
    non_finite,
    parse_study,
)

FAST = 1.0  # seconds: each refusal must come well before this


def billion_laughs(levels: int = 10) -> str:
    """A study whose name expands to ``10 ** levels`` strings (1.7 kB of text)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"study:\n  name: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def run_validate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, float]:
    start = time.perf_counter()
    code = main(["validate", *args])
    elapsed = time.perf_counter() - start
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err, elapsed


def test_billion_laughs_is_refused_fast(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    assert path.stat().st_size < 2000
    code, err, elapsed = run_validate(capsys, str(path))
    assert code == 2 and elapsed < FAST, elapsed
    assert f"bomb.yaml:5: The YAML expands to more than {MAX_YAML_NODES:,} values" in err
    assert "billion laughs" in err and "MAX_YAML_NODES" in err and "fewer aliases" in err


def test_a_few_aliases_still_work() -> None:
    text = (
        "study: {name: aliased, seeds: &seeds [1, 2]}\n"
        "training: {max_steps: 4, eval_every: 2}\n"
        "search: {rank: *seeds}\n"
    )
    cfg, errors = parse_study(None, text=text)
    assert errors == [] and cfg is not None and cfg.search.rank == [1, 2] == cfg.study.seeds


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(YamlLimitError, match=r"alias \*s refers to the node it is in"):
        check_yaml_limits("study: &s {name: x, sub: *s}\n")


def test_a_study_file_beyond_the_size_limit_is_refused_unread(tmp_path: Path, capsys) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as fh:  # valid YAML: a study, then 1 MiB of comments
        fh.write("study: {name: big}\n")
        fh.write(("# " + "x" * 1022 + "\n") * (MAX_STUDY_FILE_BYTES // 1024))
    code, err, elapsed = run_validate(capsys, str(path))
    assert code == 2 and elapsed < FAST, elapsed
    assert "larger than 1,048,576 bytes (1 MiB" in err and "MAX_STUDY_FILE_BYTES" in err
    _, errors = parse_study(None, text="study: {name: big}\n" + "#" * MAX_STUDY_FILE_BYTES)
    assert "study text is larger than" in errors[0][1]


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 3000])
def test_deep_nesting_in_the_file_is_refused_without_recursion(
    tmp_path: Path, capsys, depth: int
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("study:\n  name: " + "[" * depth + "]" * depth + "\n")
    code, err, elapsed = run_validate(capsys, str(path))
    assert code == 2 and elapsed < FAST, elapsed
    assert "nests mappings and lists" in err and f"at most {MAX_YAML_DEPTH} levels" in err


def test_deep_block_nesting_is_refused(tmp_path: Path, capsys) -> None:
    depth = 900  # indentation only: 0.8 MB, under the size limit
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "v: 1\n"
    assert len(text) < MAX_STUDY_FILE_BYTES
    path = tmp_path / "block.yaml"
    path.write_text(text)
    code, err, elapsed = run_validate(capsys, str(path))
    assert code == 2 and elapsed < FAST, elapsed
    assert f"block.yaml:{MAX_YAML_DEPTH + 1}: The YAML nests mappings and lists more than" in err


def test_deep_nesting_in_set_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("study: {name: deep}\n")
    deep_value = "study.name=" + "[" * 3000 + "]" * 3000
    code, err, elapsed = run_validate(capsys, str(path), "--set", deep_value)
    assert code == 2 and elapsed < FAST, elapsed
    assert "nests mappings and lists 3000 brackets" in err
    deep_key = "study." + ".".join(["a"] * 3000) + "=1"
    code, err, elapsed = run_validate(capsys, str(path), "--set", deep_key)
    assert code == 2 and elapsed < FAST, elapsed
    assert f"The key path has 3001 parts; at most {MAX_YAML_DEPTH}" in err


def test_non_finite_walks_any_depth_iteratively() -> None:
    value: list = [float("nan")]
    for _ in range(10_000):  # deeper than Python's recursion limit
        value = [value]
    hits = non_finite({"a": value, "b": [1.0, float("inf")]})
    assert [len(p) for p, _ in hits] == [10_002, 2]
    assert hits[1] == (("b", 1), float("inf"))
    loop: dict = {"x": float("-inf")}
    loop["self"] = loop
    assert non_finite(loop) == [(("x",), float("-inf"))]
