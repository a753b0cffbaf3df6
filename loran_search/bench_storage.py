"""``loran-search bench storage``: the storage overhead of the search loop, 1 vs 2 workers.

Each storage runs the real worker loop (:func:`loran_search.search.workers.run_worker`: stale
recovery, counting, ask, worker/heartbeat attributes, the trial record, a metrics artifact,
tell) around a no-op trainer, first with one worker process, then with two on a fresh study,
and reports

    throughput   = trials / (last worker's end − first worker's start)   [trials/s]
    ratio        = throughput(2 workers) / throughput(1 worker)

(start and end are taken inside the workers, after imports and opening the study, so process
start-up is not counted). A ratio near 2 means the storage is not the bottleneck; below 1 means a
second worker slows the study down. Defaults: a journal file and a SQLite file in a temporary
directory, and PostgreSQL at ``$LORAN_BENCH_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``) when it answers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"

STUDY = """\
study:
  name: {name}
  storage: {url}
  artifacts: {artifacts}
  sampler: {{name: random, seed: 0}}
  pruner: {{name: none}}
  n_trials: {trials}
  seeds: [0]
  baseline: false
  save_adapters: none
  report: false
model: {{name: glassllm}}
search:
  activations: [sinter]
  rank: [4]
  params:
    sinter.amplitude: {{low: 1.0e-5, high: 1.0e-2, log: true}}
"""


def noop_train(cfg: Any, **kwargs: Any) -> dict[str, Any]:
    """A trainer that trains nothing: the bench measures everything around it."""
    return {
        "status": "completed",
        "metrics": {"accuracy": float(kwargs["activation_params"].get("amplitude", 0.0))},
        "stability": {"diverged": False},
        "cost": {"train_seconds": 0.0, "peak_memory_mb": 0.0, "trainable_params": 0},
        "history": [],
    }


def _worker(text: str, queue: Any) -> None:
    from loran_search.search.study import open_study
    from loran_search.search.validate import load_config_text
    from loran_search.search.workers import run_worker

    cfg = load_config_text(text)
    handle = open_study(cfg, log=lambda m: None)
    start = time.time()
    result = run_worker(handle, train_fn=noop_train, log=lambda m: None)
    queue.put((start, time.time(), result.ran))


def measure(url: str, trials: int, workers: int, tmp: Path) -> dict[str, Any]:
    """Run one fresh study of ``trials`` no-op trials with ``workers`` processes."""
    name = f"bench-{workers}w-{uuid.uuid4().hex[:8]}"
    text = STUDY.format(name=name, url=url, artifacts=tmp / "artifacts", trials=trials)
    from loran_search.search.study import open_study
    from loran_search.search.validate import load_config_text

    open_study(load_config_text(text), log=lambda m: None)  # create it before the race
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(text, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a bench worker on {url} exited with {p.exitcode}")
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    ran = sum(r[2] for r in results)
    return {"workers": workers, "trials": ran, "seconds": wall, "trials_per_s": ran / wall}


def _postgres_ok(url: str) -> bool:
    try:
        import sqlalchemy

        from loran_search.storage.rdb import _with_driver

        engine = sqlalchemy.create_engine(_with_driver(url), connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        return True
    except Exception:
        return False


def bench(urls: list[str] | None, trials: int) -> list[dict[str, Any]]:
    """Measure each storage with 1 and then 2 workers; returns one row per storage."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="loran-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if not urls:
            urls = [f"journal:{tmp / 'bench.journal'}", f"sqlite:///{tmp / 'bench.db'}"]
            pg = os.environ.get("LORAN_BENCH_POSTGRES", DEFAULT_PG)
            if _postgres_ok(pg):
                urls.append(pg)
            else:
                rows.append({"storage": pg, "skipped": "not reachable (set LORAN_BENCH_POSTGRES)"})
        for url in urls:
            one = measure(url, trials, 1, tmp)
            two = measure(url, trials, 2, tmp)
            rows.append(
                {
                    "storage": url,
                    "trials": trials,
                    "one_worker_trials_per_s": round(one["trials_per_s"], 2),
                    "two_workers_trials_per_s": round(two["trials_per_s"], 2),
                    "ratio": round(two["trials_per_s"] / one["trials_per_s"], 3),
                }
            )
    return rows
