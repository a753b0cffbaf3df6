"""Fixtures of the search tests: study files for the fake trainer, storages, subprocess runs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FAKE_SPEC = "loran_search.testing:run"  # the packaged fake training function
PG_URL = os.environ.get("LORAN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
# The server and account of the MySQL/MariaDB tests; each test gets a fresh database on it.
MYSQL_URL = os.environ.get("LORAN_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mysql: needs a MySQL/MariaDB server (skipped with a reason when none is reachable)",
    )


STUDY = """\
study:
  name: {name}
  storage: {storage}
  metric: accuracy
  direction: maximize
  sampler: {sampler}
  pruner: {pruner}
  n_trials: {n_trials}
  seeds: {seeds}
  baseline: {baseline}
  save_adapters: {save_adapters}
  heartbeat_interval: {heartbeat}
  report: false
  confirm: {confirm}
model: {{name: glassllm, quantization: none}}
task: {{name: bbc-news, train_size: 16, eval_size: 8}}
training: {{max_steps: 6, eval_every: 2}}
search:
  activations: {activations}
  rank: {rank}
  skip_inert: {skip_inert}
  params:
{params}
"""


def study_text(**kw: object) -> str:
    values: dict[str, object] = {
        "name": "t",
        "storage": "sqlite:///t.db",
        "sampler": "{name: grid}",
        "pruner": "{name: none}",
        "n_trials": 3,
        "seeds": "[0, 1]",
        "baseline": "true",
        "save_adapters": "best",
        "heartbeat": 60,
        "confirm": "false",
        "skip_inert": "false",
        "activations": "[sinter]",
        "rank": "[4]",
        "params": "    sinter.amplitude: [1.0e-4, 1.0e-3, 1.0e-2]\n    sinter.frequency: 1.0e4",
    }
    values.update(kw)
    return STUDY.format(**values)


@pytest.fixture
def study_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a study YAML into tmp_path (``sqlite`` storage in tmp_path by default)."""

    def write(file: str = "s.yaml", **kw: object) -> Path:
        kw.setdefault("storage", f"sqlite:///{tmp_path / 'study.db'}")
        path = tmp_path / file
        path.write_text(study_text(**kw))
        return path

    return write


@pytest.fixture
def fake_env(tmp_path: Path) -> dict[str, str]:
    """Environment for subprocesses: the fake trainer, its log, quiet bars."""
    env = dict(os.environ)
    env["LORAN_SEARCH_TRAIN_FN"] = FAKE_SPEC
    env["FAKE_TRAIN_LOG"] = str(tmp_path / "runs.log")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(*args: str) -> list[str]:
    # the console script, not `python -m loran_search.cli` (whose __main__ copy of CliError
    # would not be the class the handlers raise)
    return [str(Path(sys.executable).with_name("loran-search")), *args]


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def postgres_url() -> str:
    """The test server's URL, or skip with how to provide one."""
    try:
        import psycopg2

        conn = psycopg2.connect(PG_URL, connect_timeout=2)
        conn.close()
    except Exception as err:  # pragma: no cover - depends on the machine
        pytest.skip(
            f"No PostgreSQL at {PG_URL} ({type(err).__name__}). Start one (trust auth, database "
            "`test`) on 127.0.0.1:5432, or set LORAN_TEST_POSTGRES=postgresql://USER@HOST/DB, "
            "then run: pytest tests/loran_search/search -k postgres"
        )
    return PG_URL


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _mysql_connect(url: str, database: str | None = None):
    from urllib.parse import unquote, urlsplit

    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=database,
        connect_timeout=2,
        autocommit=True,
    )


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty database on the test MySQL server (dropped afterwards), as a URL."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        conn = _mysql_connect(MYSQL_URL)
    except Exception as err:  # pragma: no cover - depends on the machine
        pytest.skip(
            f"No MySQL/MariaDB at {MYSQL_URL} ({type(err).__name__}: {err}). Start one on "
            "127.0.0.1:3306 with a user that may create databases (root, empty password), or "
            "set LORAN_TEST_MYSQL=mysql://USER:PASSWORD@HOST:PORT/DB, install PyMySQL "
            "(pip install -e .[mysql]), then run: pytest tests/loran_search/search -m mysql"
        )
    name = "loran_" + uuid.uuid4().hex[:12]
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    parts = urlsplit(MYSQL_URL)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    finally:
        with conn.cursor() as cur:  # don't hang on a connection a crashed test left open
            cur.execute("SET SESSION lock_wait_timeout = 30")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
