"""The server as operators run it: `recsearch serve` in its own process."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from tests.serving.helpers import pb, stub_for

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120


def start_serve(model_dir, *extra) -> tuple[subprocess.Popen, int, list[dict]]:
    """Start `recsearch serve` on a free loopback port; return the process, its port and its log events so far."""
    process = subprocess.Popen(
        [sys.executable, "-m", "recsearch.cli.main", "serve", str(model_dir), "--port", "0", "--reload-interval", "0", *extra],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    events: list[dict] = []
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        event = json.loads(line)
        events.append(event)
        if event.get("event") == "start" and "workers" in event or (event.get("event") == "start" and "--workers" not in extra):
            threading.Thread(target=_drain, args=(process, events), daemon=True).start()
            return process, int(event["port"]), events
    process.kill()
    raise AssertionError(f"the server did not start: {events}")


def _drain(process, events) -> None:
    for line in process.stderr:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            events.append({"raw": line})


def test_server_process_imports_no_torch(history_model_dir):
    code = (
        "import sys\n"
        "from recsearch.cli.main import build_parser\n"
        "build_parser()\n"
        "import serving.server, serving.supervisor\n"
        "from serving.model import ServingModel, Query\n"
        f"model = ServingModel.load({str(history_model_dir)!r})\n"
        "model.recommend(Query('someone', 3, recent_item_ids=(str(model.item_ids[0]),)))\n"
        "heavy = sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_sigterm_drains_and_exits_zero(history_model_dir):
    process, port, events = start_serve(history_model_dir, "--grace", "5")
    channel, stub = stub_for(port)
    failures = []
    n_answered = [0]
    stop = threading.Event()
    signalled = threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                stub.Recommend(pb.RecommendRequest(user_id="someone", k=3), timeout=5)
                n_answered[0] += 1
            except grpc.RpcError as exc:
                # Calls sent after SIGTERM may be refused or cancelled at the closing transport.
                refused = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
                if not (signalled.is_set() and refused):
                    failures.append(exc)

    thread = threading.Thread(target=traffic)
    thread.start()
    time.sleep(0.5)
    signalled.set()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    stop.set()
    thread.join()
    channel.close()
    assert failures == []
    assert n_answered[0] > 0
    names = [event.get("event") for event in events]
    assert "stopping" in names
    assert "stop" in names


def test_workers_share_one_port(history_model_dir):
    process, port, events = start_serve(history_model_dir, "--workers", "2")
    try:
        channel, stub = stub_for(port)
        for _ in range(20):
            assert len(stub.Recommend(pb.RecommendRequest(user_id="x", k=2), timeout=10).items) == 2
        channel.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    worker_starts = [e for e in events if e.get("event") == "start" and "workers" not in e]
    assert len({e["pid"] for e in worker_starts}) == 2
    # uvloop is a dependency on Linux and macOS: every worker's event loop is uvloop's.
    assert {e["event_loop"] for e in worker_starts} == {"uvloop"}


def test_serve_rejects_corrupted_model(history_model_dir, tmp_path):
    from tests.serving.test_reload import corrupt_copy

    corrupt_copy(history_model_dir, tmp_path / "bad")
    result = subprocess.run(
        [sys.executable, "-m", "recsearch.cli.main", "serve", str(tmp_path / "bad"), "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "item_vectors.npy fails its sha256 check" in result.stderr.replace("\n", "")
