"""Search workers as separate processes: a killed worker, SIGTERM, and two workers on PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

POSTGRES_ADMIN = os.environ.get("RECSEARCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

# Trials of a few seconds each, so a test can catch one while it runs.
SLOW_SPACE = """
[params."model.embedding_dim"]
choices = [32]

[params."train.batch_size"]
choices = [64]

[params."model.user_tower.history"]
choices = ["none"]

[fixed]
"train.max_epochs" = 4
"train.patience" = 4
"""


def _command(data: Path, run_dir: Path, space: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "recsearch.cli.main", "-q", "search", str(data), "--out", str(run_dir),
        "--space", str(space), "--no-refit", "--pruner", "none", *extra,
    ]


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="recsearch", storage=storage).trials
    except KeyError:
        return []


def _running_in_sqlite(path: Path) -> bool:
    """Read the trial states read-only, so polling never creates tables under a starting worker."""
    if not path.exists():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as connection:
            rows = connection.execute("SELECT state FROM trials").fetchall()
    except sqlite3.Error:
        return False  # the worker is still creating the schema
    return any(state == "RUNNING" for (state,) in rows)


def _beating_in_sqlite(path: Path) -> bool:
    """Whether a running trial has recorded a heartbeat: only such a trial can later be found stale."""
    if not path.exists():
        return False
    query = ("SELECT COUNT(*) FROM trials JOIN trial_heartbeats USING (trial_id) "
             "WHERE trials.state = 'RUNNING'")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as connection:
            (count,) = connection.execute(query).fetchone()
    except sqlite3.Error:
        return False
    return count > 0


def _wait_for(check, database: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"worker exited early with {process.returncode}: {process.stderr.read()}")
        if check(database):
            return
        time.sleep(0.1)
    raise AssertionError(f"{check.__name__} never held in {timeout:.0f} s")


def _wait_for_running(database: Path, process: subprocess.Popen) -> None:
    _wait_for(_running_in_sqlite, database, process)


@pytest.fixture()
def slow_space(tmp_path) -> Path:
    path = tmp_path / "slow.toml"
    path.write_text(SLOW_SPACE, encoding="utf-8")
    return path


def test_killed_worker_trial_is_retried(search_data, slow_space, tmp_path):
    run_dir = tmp_path / "run"
    storage = f"sqlite:///{run_dir / 'study.db'}"
    beat = ("--heartbeat-interval", "1", "--grace-period", "3")
    first = subprocess.Popen(_command(search_data, run_dir, slow_space, "--trials", "2", *beat),
                             stderr=subprocess.PIPE, text=True)
    # Kill as soon as the running trial has a heartbeat (one without any is never found stale),
    # not after a fixed sleep: on a fast machine both trials may finish within any sleep.
    _wait_for(_beating_in_sqlite, run_dir / "study.db", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed = [t.number for t in _trials(storage) if t.state == TrialState.RUNNING]
    assert len(killed) == 1

    time.sleep(4)  # past the grace period, so the next worker finds the trial stale
    second = subprocess.run(_command(search_data, run_dir, slow_space, "--trials", "2", *beat),
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    trials = _trials(storage)
    states = {t.number: t.state for t in trials}
    assert states[killed[0]] == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed[0]]
    assert len(retries) == 1
    assert retries[0].state == TrialState.COMPLETE
    original = next(t for t in trials if t.number == killed[0])
    # The retry starts from the parameters the killed trial had drawn, then draws the rest.
    assert original.params.items() <= retries[0].params.items()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2


def test_sigterm_finishes_running_trial(search_data, slow_space, tmp_path):
    run_dir = tmp_path / "run"
    storage = f"sqlite:///{run_dir / 'study.db'}"
    worker = subprocess.Popen(_command(search_data, run_dir, slow_space, "--trials", "50"),
                              stderr=subprocess.PIPE, text=True)
    _wait_for_running(run_dir / "study.db", worker)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=300) == 0
    trials = _trials(storage)
    # The other seed trials, queued when the study was created, wait for the next run.
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.WAITING, TrialState.WAITING]
    assert (run_dir / "leaderboard.csv").is_file()
    assert (run_dir / "winner" / "model.pt").is_file()


def _postgres_database():
    """Create a fresh database on the local PostgreSQL server and return its URL and a drop function."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is needed for the PostgreSQL tests")
    try:
        admin = psycopg.connect(POSTGRES_ADMIN, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("RECSEARCH_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL server at {POSTGRES_ADMIN}: {exc}".strip())
    name = f"recsearch_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return url, drop


def test_two_workers_share_postgres_study(search_data, fast_space, tmp_path):
    url, drop = _postgres_database()
    try:
        # Create the study once, so the two workers do not race to create its tables.
        optuna.create_study(study_name="recsearch", storage=url, direction="maximize")
        n_trials = 4
        workers = [
            subprocess.Popen(
                _command(search_data, tmp_path / f"worker-{i}", fast_space, "--trials", str(n_trials), "--storage", url),
                stderr=subprocess.PIPE, text=True,
            )
            for i in range(2)
        ]
        for worker in workers:
            assert worker.wait(timeout=600) == 0, worker.stderr.read()
        trials = _trials(url)
        numbers = sorted(t.number for t in trials)
        assert numbers == list(range(len(trials)))
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        # Each worker checks the budget after its own trial, so the other may finish one more.
        assert n_trials <= len(finished) <= n_trials + 1
        assert all(t.state != TrialState.RUNNING for t in trials)
        assert {t.user_attrs["run_dir"].split("/worker-")[1][0] for t in finished} == {"0", "1"}
    finally:
        drop()
