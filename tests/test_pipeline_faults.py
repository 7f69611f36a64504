"""Faults of `recsearch run` found by trying to break it: resuming, missing outputs, signals, inputs, ports.

Each test runs the pipeline on a small synthetic log with a two-epoch search space, so
one full run takes a few seconds on two cores.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import recsearch
from recsearch.cli.main import main
from recsearch.cli.run_cmd import StageDisplay
from recsearch.datasets import SYNTHETIC_EVENT_WEIGHTS
from recsearch.pipeline import PipelineHooks, _remove_staging_leftovers
from recsearch.report import ReportConfig
from recsearch.search import SearchConfig
from tests.pipeline_helpers import SPACE, WEIGHTS, click_log, space  # noqa: F401  (fixtures)
from tests.pipeline_helpers import cli as _cli
from tests.pipeline_helpers import finished_trials as _finished_trials
from tests.pipeline_helpers import state as _state


PROJECT_ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_SECONDS = 120  # one CLI process: imports, skipped stages, then the check
SERVE_SECONDS = 30  # a `run --serve` still running after this long is serving


@pytest.fixture()
def own_log(click_log, tmp_path) -> Path:
    """A copy of the log that a test may touch or edit."""
    path = tmp_path / "own-clicks.csv"
    shutil.copy2(click_log, path)
    return path


@pytest.fixture(scope="module")
def finished_run(click_log, space, tmp_path_factory) -> Path:
    """A finished pipeline that tests only read (every stage is skipped when they rerun it)."""
    out = tmp_path_factory.mktemp("pipeline") / "out"
    assert main(_cli(click_log, out, space, "--trials", "1")) == 0
    return out


def _run_subprocess(args: list[str], timeout: float = SUBPROCESS_SECONDS) -> subprocess.CompletedProcess:
    """Run the CLI in its own process, from this checkout; subprocess.run kills it after ``timeout`` seconds."""
    return subprocess.run([sys.executable, "-m", "recsearch.cli.main", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


# Missing outputs: a rerun must notice them instead of skipping the stage that writes them.

@pytest.mark.parametrize(("deleted", "expected"), [
    ("run/model", "run/model/manifest.json"),
    ("run/report.html", "run/report.html"),
    ("data", "data/dataset.json"),
])
def test_deleted_output_is_rebuilt(click_log, space, tmp_path, deleted, expected):
    out = tmp_path / "out"
    assert main(_cli(click_log, out, space, "--trials", "1")) == 0
    target = out / deleted
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()

    assert main(_cli(click_log, out, space, "--trials", "1")) == 0

    assert (out / expected).is_file()


# Resuming: what a rerun continues, keeps or starts over.

def test_timeout_search_continues(click_log, space, tmp_path):
    # --timeout limits one invocation, so the same command run again continues the study
    # towards --trials. --trial-timeout keeps the tiny --timeout from cutting the trial itself.
    command = _cli(click_log, tmp_path / "out", space, "--trials", "3", "--timeout", "0.001", "--trial-timeout", "600")
    assert main(command) == 0
    first = _finished_trials(tmp_path / "out")
    assert first < 3

    assert main(command) == 0

    assert _finished_trials(tmp_path / "out") > first


def test_failed_ingest_change_keeps_search(click_log, space, tmp_path):
    out = tmp_path / "out"
    assert main(_cli(click_log, out, space, "--trials", "1")) == 0
    before = _state(out)

    # A mistyped ingestion option fails before any new dataset is written.
    assert main(_cli(click_log, out, space, "--trials", "1", "--user-col", "no_such_column")) == 2
    assert main(_cli(click_log, out, space, "--trials", "1")) == 0

    # The same command as the first run finds its dataset and its search still done.
    after = _state(out)
    assert after["stages"]["ingest"] == before["stages"]["ingest"]
    assert after["stages"]["search"] == before["stages"]["search"]


def test_edited_space_file_reruns_search(click_log, tmp_path, capsys):
    out = tmp_path / "out"
    space = tmp_path / "space.toml"
    space.write_text(SPACE, encoding="utf-8")
    assert main(_cli(click_log, out, space, "--trials", "1")) == 0
    before = _state(out)
    capsys.readouterr()

    space.write_text(SPACE.replace('"train.max_epochs" = 2', '"train.max_epochs" = 1'), encoding="utf-8")
    assert main(_cli(click_log, out, space, "--trials", "1")) == 0

    assert capsys.readouterr().err.count("already done, skipped") == 1  # ingest only
    assert _state(out)["stages"]["search"]["fingerprint"] != before["stages"]["search"]["fingerprint"]


def test_touched_input_keeps_search(own_log, space, tmp_path):
    out = tmp_path / "out"
    assert main(_cli(own_log, out, space, "--trials", "1")) == 0
    before = _state(out)

    # Same bytes, newer modification time: the dataset does not change.
    later = own_log.stat().st_mtime_ns + 10**9
    os.utime(own_log, ns=(later, later))
    assert main(_cli(own_log, out, space, "--trials", "1")) == 0

    assert _state(out)["stages"]["search"] == before["stages"]["search"]


def test_same_size_edit_reruns_ingest(own_log, space, tmp_path):
    out = tmp_path / "out"
    assert main(_cli(own_log, out, space, "--trials", "1")) == 0
    before = _state(out)

    # A copy that keeps modification times (cp -p, rsync -t, tar) brings in a new log of the same size.
    stat = own_log.stat()
    text = own_log.read_text(encoding="utf-8")
    edited = text.replace("u000000,", "u999999,")
    assert len(edited) == len(text)
    assert edited != text
    own_log.write_text(edited, encoding="utf-8")
    os.utime(own_log, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main(_cli(own_log, out, space, "--trials", "1")) == 0

    assert _state(out)["stages"]["ingest"]["fingerprint"] != before["stages"]["ingest"]["fingerprint"]
    users = pl.read_parquet(out / "data" / "users.parquet")["user_id"].to_list()
    assert "u999999" in users
    assert "u000000" not in users


def test_index_change_reruns_export_only(click_log, space, tmp_path):
    out = tmp_path / "out"
    assert main(_cli(click_log, out, space, "--trials", "1")) == 0
    before = _state(out)

    assert main(_cli(click_log, out, space, "--trials", "1", "--index", "hnsw")) == 0

    after = _state(out)
    assert after["stages"]["ingest"] == before["stages"]["ingest"]
    assert after["stages"]["search"] == before["stages"]["search"]
    assert after["stages"]["export"]["fingerprint"] != before["stages"]["export"]["fingerprint"]
    assert after["stages"]["report"] != before["stages"]["report"]
    manifest = json.loads((out / "run" / "model" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["index"]["kind"] == "hnsw"


# Interruptions.

def test_interrupted_export_resumes(click_log, tmp_path, space):
    out = tmp_path / "out"
    search = SearchConfig(n_trials=1, space_file=space, pruner="none")
    ingest = {"event_weights": dict(SYNTHETIC_EVENT_WEIGHTS)}
    report = ReportConfig(n_resamples=100)

    def interrupt_export(stage, event):
        if (stage, event) == ("export", "start"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recsearch.run(click_log, out, ingest=ingest, search=search, report=report,
                      hooks=PipelineHooks(stage=interrupt_export))
    assert list(_state(out)["stages"]) == ["ingest", "search"]

    result = recsearch.run(click_log, out, ingest=ingest, search=search, report=report)

    assert result.stages["ingest"].skipped and result.stages["search"].skipped
    assert not result.stages["export"].skipped
    assert not result.stages["report"].skipped
    assert (result.model_dir / "manifest.json").is_file()
    assert result.report_html.is_file()


def test_killed_stage_leftovers_are_removed(click_log, space, tmp_path):
    # A stage killed before renaming its staging folder into place, or after moving the
    # previous output aside, leaves the folder behind.
    out = tmp_path / "out"
    assert main(_cli(click_log, out, space, "--trials", "1")) == 0
    leftovers = [out / ".data.tmp-k1ll3d_x", out / ".data.old-0a1b2c3d", out / "run" / ".model.tmp-k1ll3d_x",
                 out / "run" / ".model.old-9f8e7d6c"]
    for path in leftovers:
        path.mkdir()
        (path / "part.parquet").write_bytes(b"partial")
    # What a user may keep in OUT under similar names stays: other names, files, links.
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep", encoding="utf-8")
    user_entries = [out / ".data.tmp-userdir", out / ".data.tmp-notes123", out / ".data.tmp-abcdefgh"]
    user_entries[0].mkdir()
    user_entries[1].write_text("notes", encoding="utf-8")
    user_entries[2].symlink_to(victim, target_is_directory=True)

    assert main(_cli(click_log, out, space, "--trials", "1")) == 0

    for path in leftovers:
        assert not path.exists()
    for path in user_entries:
        assert path.is_symlink() or path.exists()
    assert (victim / "keep.txt").is_file()
    assert (out / "data" / "dataset.json").is_file()
    assert (out / "run" / "model" / "manifest.json").is_file()


def test_leftover_count_names_only_removed_folders(tmp_path, caplog):
    (tmp_path / "run").mkdir()
    (tmp_path / ".data.tmp-a1b2c3d4").mkdir()
    (tmp_path / "run" / ".model.old-a1b2c3d4").mkdir()
    (tmp_path / ".data.tmp-e5f6g7h8").write_text("a file", encoding="utf-8")

    with caplog.at_level(logging.INFO, logger="recsearch.pipeline"):
        _remove_staging_leftovers(tmp_path)

    assert "removed 2 staging folders" in caplog.text
    assert (tmp_path / ".data.tmp-e5f6g7h8").is_file()


def test_stop_request_skips_refit(click_log, space, tmp_path):
    # SIGTERM stops the search after the running trial. The refit, the final model and the
    # baselines are work for a finished search: a stopped pipeline discards them, and the rerun computes them again.
    out = tmp_path / "out"
    search = SearchConfig(n_trials=3, space_file=space, pruner="none")

    def stop(study, trial):
        os.kill(os.getpid(), signal.SIGTERM)

    result = recsearch.run(click_log, out, ingest={"event_weights": dict(SYNTHETIC_EVENT_WEIGHTS)}, search=search,
                           report=ReportConfig(n_resamples=100), hooks=PipelineHooks(trial=stop))

    assert result.stopped_early
    assert not (out / "run" / "evaluation.json").exists()
    assert not (out / "run" / "final").exists()


def test_stopped_run_exits_nonzero(click_log, space, tmp_path, monkeypatch, capsys):
    # A run stopped by SIGTERM or Ctrl-C has no model yet: `recsearch run ... && deploy` must not go on.
    def stop(self, study, trial):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(StageDisplay, "trial", stop)

    status = main(_cli(click_log, tmp_path / "out", space, "--trials", "3"))

    assert "run the same command again" in capsys.readouterr().err
    assert status != 0


# Bad inputs and outputs.

@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.csv", "", "empty.csv is empty"),
    ("wrong.csv", "a,b,c\n1,2,3\n4,5,6\n", "no user column found; columns found: a, b, c"),
])
def test_bad_input_is_named(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")

    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--trials", "1"]) == 2

    assert message in capsys.readouterr().err


def test_empty_input_folder_is_named(tmp_path, capsys):
    folder = tmp_path / "parts"
    folder.mkdir()

    assert main(["run", str(folder), "--out", str(tmp_path / "out"), "--trials", "1"]) == 2

    assert "contains no data files" in capsys.readouterr().err


def test_header_only_input_says_no_rows(click_log, tmp_path, capsys):
    path = tmp_path / "header.csv"
    path.write_text(click_log.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")

    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--event-weights", WEIGHTS, "--trials", "1"]) == 2

    err = capsys.readouterr().err
    assert "no data rows" in err


def test_out_is_file_is_named(click_log, space, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("not a folder\n", encoding="utf-8")

    assert main(_cli(click_log, out, space, "--trials", "1")) == 2

    assert str(out) in capsys.readouterr().err


def test_concurrent_run_on_same_out_is_rejected(click_log, space, tmp_path, capsys):
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "recsearch.cli.main", *_cli(click_log, out, space, "--trials", "50")],
                             cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SUBPROCESS_SECONDS
        while not (out / "run" / "study.db").exists():
            assert first.poll() is None, "the first run ended before its search started"
            assert time.monotonic() < deadline, "the first run did not start its search in time"
            time.sleep(0.1)

        status = main(_cli(click_log, out, space, "--trials", "1"))

        assert first.poll() is None, "the first run ended while the second one ran; the test proves nothing"
    finally:
        first.kill()
        first.wait()
    assert status == 2
    assert str(out) in capsys.readouterr().err


# Serving at the end.

def test_serve_port_taken_by_socket(finished_run, click_log, space):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        args = _cli(click_log, finished_run, space, "--trials", "1", "--serve", "--port", str(port))
        completed = _run_subprocess(args, timeout=SERVE_SECONDS)

    assert completed.returncode == 2
    assert "could not bind" in completed.stderr


def test_serve_port_taken_by_grpc_server(finished_run, click_log, space):
    from serving.model import Limits
    from serving.server import BackgroundServer, ServerOptions

    # The server sets SO_REUSEPORT (serving/server.py), so a second server can bind the same port
    # and the kernel then splits new connections between the two.
    server = BackgroundServer(ServerOptions(model_dir=finished_run / "run" / "model", host="127.0.0.1", port=0,
                                            limits=Limits(), reload_interval=0))
    try:
        args = _cli(click_log, finished_run, space, "--trials", "1", "--serve", "--port", str(server.port))
        try:
            completed = _run_subprocess(args, timeout=SERVE_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"recsearch run --serve kept serving on port {server.port}, which another server already uses")
    finally:
        server.stop()

    assert completed.returncode == 2
    assert "could not bind" in completed.stderr
