"""Workers starting together on a fresh SQLite file all get the storage and the one study.

Before, 2-4 workers racing to create Optuna's tables failed with "table studies already exists"
(about one start in six on a 2-core machine). Four real processes wait at a barrier, then each
opens the storage and creates (or, losing that race, loads) the study; several rounds, each on a
new file.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

import optuna
import pytest

from loran_search.storage import open_storage

WORKERS = 4
ROUNDS = 6


def worker(
    url: str, barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue
) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        barrier.wait(timeout=60)
        storage = open_storage(url, heartbeat_interval=60)
        try:
            study = optuna.create_study(study_name="s", storage=storage)
            made = "created"
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name="s", storage=storage)
            made = "loaded"
        study.enqueue_trial({"x": 0.5})
        out.put((made, study._study_id))
    except BaseException as err:  # reported to the parent, which fails the test
        out.put(("error", f"{type(err).__name__}: {err}"))


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_four_workers_start_together_on_a_fresh_sqlite_file(tmp_path: Path, start: str) -> None:
    if start not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {start} start method here")
    ctx = multiprocessing.get_context(start)
    rounds = ROUNDS if start == "fork" else 2  # spawn re-imports optuna: slower, fewer rounds
    for n in range(rounds):
        url = f"sqlite:///{tmp_path / f'round{n}' / 'study.db'}"
        barrier = ctx.Barrier(WORKERS)
        out = ctx.Queue()
        procs = [ctx.Process(target=worker, args=(url, barrier, out)) for _ in range(WORKERS)]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert [r for r in results if r[0] == "error"] == [], f"round {n}"
        assert sorted(r[0] for r in results) == ["created", *["loaded"] * (WORKERS - 1)]
        assert {r[1] for r in results} == {results[0][1]}  # one study
        study = optuna.load_study(study_name="s", storage=open_storage(url))
        assert len(study.trials) == WORKERS  # every worker's write landed
