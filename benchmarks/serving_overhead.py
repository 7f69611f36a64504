"""The CPU cost of a Recommend call, measured with the server's index search replaced by stand-ins.

Runs `recsearch serve` on a 10,000-item flat model with the index search swapped, in every
worker, for one of:

- ``real``: the FAISS search itself;
- ``spin``: the cached result after a Python loop that holds the interpreter lock for
  as long as one real search takes;
- ``hash``: the cached result after SHA-256 work of that length, which releases the lock;
- ``cached``: the cached result at once, so no search at all.

Each mode is driven by h2load at one concurrency for a few seconds; the script prints
requests per second and the server's CPU per request. Only for measurements: the stand-ins
return one user's earlier result, which a real server must never do.

    python benchmarks/serving_overhead.py --workers 1 --concurrency 32
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsearch.item_index import ItemIndex  # noqa: E402

MODES = ("real", "spin", "hash", "cached")
_MODE_VARIABLE = "RECSEARCH_OVERHEAD_MODE"
_SEARCH_SECONDS_VARIABLE = "RECSEARCH_OVERHEAD_SEARCH_SECONDS"


def _install_stand_in(mode: str, search_seconds: float) -> None:
    """Replace ItemIndex.search in this process (each worker imports this module anew)."""
    if mode == "real":
        return
    real_search = ItemIndex.search
    results: dict[tuple[bytes, int], tuple[np.ndarray, np.ndarray]] = {}
    block = bytes(60_000)
    started = time.perf_counter()
    for _ in range(50):
        hashlib.sha256(block)
    hash_rounds = max(1, round(search_seconds / ((time.perf_counter() - started) / 50)))

    def search(self: ItemIndex, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        key = (np.ascontiguousarray(xq).tobytes(), k)
        result = results.get(key)
        if result is None:
            result = results[key] = real_search(self, xq, k)
        if mode == "spin":
            until = time.perf_counter() + search_seconds
            while time.perf_counter() < until:
                pass
        elif mode == "hash":
            for _ in range(hash_rounds):
                hashlib.sha256(block)  # releases the interpreter lock for inputs this large
        return result

    ItemIndex.search = search


if os.environ.get(_MODE_VARIABLE):
    _install_stand_in(os.environ[_MODE_VARIABLE], float(os.environ[_SEARCH_SECONDS_VARIABLE]))


def _start(model_dir: Path, workers: int, mode: str, search_seconds: float) -> tuple[subprocess.Popen, int]:
    environment = {**os.environ, _MODE_VARIABLE: mode, _SEARCH_SECONDS_VARIABLE: str(search_seconds)}
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(model_dir), "--workers", str(workers)],
        stderr=subprocess.PIPE, text=True, env=environment,
    )
    for line in process.stderr:
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("event") == "start" and (workers == 1 or "workers" in event):
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process, int(event["port"])
    raise RuntimeError(
        f"the server for mode {mode!r} exited before it started; run `recsearch serve {model_dir}` to see why"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # a server process started by this script
    args = parser.parse_args()
    if args.serve is not None:
        from recsearch.cli.main import main as cli

        return cli(["serve", str(args.serve), "--port", "0", "--no-verify", "--reload-interval", "0",
                    "--workers", str(args.workers)])

    from benchmarks.serving_benchmark import drive_h2load, index_search_us, server_cpu_seconds, write_model

    with tempfile.TemporaryDirectory(prefix="recsearch-overhead-") as scratch:
        model_dir = Path(scratch) / "model"
        write_model(model_dir, 10_000, seed=0)
        search_us = index_search_us(model_dir)["p50"]
        print(f"index search alone: p50 {search_us:.0f} µs", flush=True)
        for mode in args.modes:
            process, port = _start(model_dir, args.workers, mode, search_us / 1e6)
            try:
                drive_h2load(port, args.concurrency, 1.0, Path(scratch))  # warm-up, and fills the result cache
                cpu_before = server_cpu_seconds(process)
                result = drive_h2load(port, args.concurrency, args.seconds, Path(scratch))
                cpu_us = (server_cpu_seconds(process) - cpu_before) * 1e6 / max(1.0, result["rps"] * args.seconds)
            finally:
                process.terminate()
                process.wait(timeout=60)
            print(f"{mode:>6}: {result['rps']:,.0f} requests/s, {cpu_us:.0f} µs of server CPU each, "
                  f"p50 {result['p50_ms']:.2f} ms, errors {result['errors']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
