"""`recsearch run` and `recsearch.run`: every stage in one call, resumable, on a small synthetic log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import recsearch
from recsearch.cli.main import main
from recsearch.datasets import SYNTHETIC_EVENT_WEIGHTS
from recsearch.errors import InputError
from recsearch.pipeline import STAGES, STATE_FILE, PipelineHooks
from recsearch.report import ReportConfig
from recsearch.search import SearchConfig
from tests.pipeline_helpers import WEIGHTS, click_log, space  # noqa: F401  (fixtures)
from tests.pipeline_helpers import cli as _cli
from tests.pipeline_helpers import finished_trials as _finished_trials
from tests.pipeline_helpers import state as _state




@pytest.fixture(scope="module")
def finished_run(click_log, space, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipeline") / "out"
    assert main(_cli(click_log, out, space, "--trials", "2")) == 0
    return out


def test_run_writes_every_stage(finished_run):
    out = finished_run
    state = _state(out)
    assert list(state["stages"]) == list(STAGES)
    assert (out / "data" / "dataset.json").is_file()
    manifest = json.loads((out / "run" / "model" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["n_items"] == state["stages"]["ingest"]["summary"]["n_items"]
    for suffix in (".html", ".json", ".md"):
        assert (out / "run" / f"report{suffix}").is_file()
    search = state["stages"]["search"]["summary"]
    assert search["trials"]["complete"] == 2
    assert search["best_baseline"] in {"most_popular", "item_knn", "ease", "ials"}
    assert 0.0 <= search["refit_test_ndcg@10"] <= 1.0
    assert all(record["seconds"] > 0 and record["peak_rss_mib"] > 0 for record in state["stages"].values())


def test_same_command_skips_every_stage(finished_run, click_log, space, capsys):
    before = _state(finished_run)
    report_time = (finished_run / "run" / "report.html").stat().st_mtime_ns

    assert main(_cli(click_log, finished_run, space, "--trials", "2")) == 0

    assert _state(finished_run) == before
    assert (finished_run / "run" / "report.html").stat().st_mtime_ns == report_time
    assert capsys.readouterr().err.count("already done, skipped") == len(STAGES)


def test_more_trials_continue_study(click_log, space, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_cli(click_log, out, space, "--trials", "1", "--no-final-model")) == 0
    first = _state(out)
    files = [out / "run" / "model" / "manifest.json", out / "run" / "report.html"]
    before = [path.stat().st_mtime_ns for path in files]

    assert main(_cli(click_log, out, space, "--trials", "2", "--no-final-model")) == 0

    second = _state(out)
    assert second["stages"]["ingest"] == first["stages"]["ingest"]
    assert second["stages"]["search"]["fingerprint"] != first["stages"]["search"]["fingerprint"]
    assert _finished_trials(out) == 2
    assert second["stages"]["search"]["summary"]["trials"]["complete"] == 2
    # Export and report ran again on the new winner, though their own options did not change.
    assert all(path.stat().st_mtime_ns > mtime for path, mtime in zip(files, before))
    # -q keeps Lightning's INFO tips out, even though Lightning resets its logger's level on import.
    assert "litlogger" not in capsys.readouterr().err


def test_interrupted_search_resumes(click_log, space, tmp_path):
    out = tmp_path / "out"
    search = SearchConfig(n_trials=3, space_file=space, pruner="none", final_model=False)
    ingest = {"event_weights": dict(SYNTHETIC_EVENT_WEIGHTS)}

    def interrupt(study, trial):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recsearch.run(click_log, out, ingest=ingest, search=search, report=ReportConfig(n_resamples=100),
                      hooks=PipelineHooks(trial=interrupt))
    assert list(_state(out)["stages"]) == ["ingest"]
    assert _finished_trials(out) == 1

    events: list[tuple[str, str]] = []
    result = recsearch.run(click_log, out, ingest=ingest, search=search, report=ReportConfig(n_resamples=100),
                           hooks=PipelineHooks(stage=lambda stage, event: events.append((stage, event))))

    assert events[0] == ("ingest", "skip")
    assert ("search", "done") in events
    assert ("report", "done") in events
    assert _finished_trials(out) == 3
    assert result.stages["ingest"].skipped and not result.stages["search"].skipped
    assert result.evaluation["refit_test"]["ndcg@10"] >= 0.0
    assert (result.model_dir / "manifest.json").is_file()


def test_changed_ingest_option_starts_over(click_log, space, tmp_path):
    out = tmp_path / "out"
    assert main(_cli(click_log, out, space, "--trials", "1", "--no-final-model")) == 0
    first = _state(out)

    assert main(_cli(click_log, out, space, "--trials", "1", "--no-final-model", "--min-user-interactions", "3")) == 0

    second = _state(out)
    assert second["stages"]["ingest"]["fingerprint"] != first["stages"]["ingest"]["fingerprint"]
    # The old study was scored on the old data, so the search started afresh rather than continuing it.
    assert _finished_trials(out) == 1
    users = np.load(out / "run" / "model" / "user_ids.npy", allow_pickle=False)
    assert len(users) == second["stages"]["ingest"]["summary"]["n_users"]
    assert second["stages"]["ingest"]["summary"]["n_users"] <= first["stages"]["ingest"]["summary"]["n_users"]


def test_unknown_ingest_option_is_named(click_log, tmp_path):
    with pytest.raises(InputError, match="min_users"):
        recsearch.run(click_log, tmp_path / "out", ingest={"min_users": 3})


def test_missing_input_is_named(tmp_path, capsys):
    missing = tmp_path / "nowhere.csv"
    assert main(["run", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_damaged_state_file_is_named(click_log, space, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / STATE_FILE).write_text("{not json", encoding="utf-8")
    assert main(_cli(click_log, out, space, "--trials", "1")) == 2
    err = capsys.readouterr().err
    assert STATE_FILE in err
    assert "delete it" in err


def test_serve_flag_serves_the_model(finished_run, click_log, space):
    import signal
    import socket
    import subprocess
    import sys

    import grpc

    from serving._proto.recsearch.v1 import recommender_pb2 as pb
    from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "recsearch.cli.main", *_cli(click_log, finished_run, space, "--trials", "2"),
               "--serve", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
            user = str(np.load(finished_run / "run" / "model" / "user_ids.npy", allow_pickle=False)[0])
            response = pb_grpc.RecommenderServiceStub(channel).Recommend(pb.RecommendRequest(user_id=user, k=3), timeout=10)
        assert len(response.items) == 3
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0
    assert f'grpcurl -plaintext -d \'{{"user_id": "{user}", "k": 10}}\' 127.0.0.1:{port}' in err
