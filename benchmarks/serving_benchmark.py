"""Load test of `recsearch serve` on loopback: latency and throughput beside the index search time alone.

For each catalogue size it writes a MODEL_DIR of synthetic clustered vectors (the
export's own index selection picks and tunes the index), starts the server with
--workers, and drives it from separate load-generator processes with a fixed number
of requests in flight. Every run is bounded by --seconds per concurrency level.

    python benchmarks/serving_benchmark.py --sizes 10000 100000 1000000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.page import machine_line, write_section  # noqa: E402
from recsearch.export.index import INDEX_KINDS  # noqa: E402

DIM = 64
N_USERS = 20_000
SEEN_PER_USER = 20
K = 10


def synthetic_vectors(n: int, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Vectors around cluster centres, like learned embeddings, which are far from uniform."""
    centres = rng.normal(size=(n_clusters, DIM)).astype(np.float32)
    assignment = rng.integers(0, n_clusters, n)
    return (centres[assignment] + 0.5 * rng.normal(size=(n, DIM))).astype(np.float32)


def write_model(out: Path, n_items: int, seed: int, index_kind: str = "auto") -> dict:
    import faiss

    from recsearch import model_dir as md
    from recsearch.export.index import IndexConfig, build_index

    rng = np.random.default_rng(seed)
    item_vectors = synthetic_vectors(n_items, 256, rng)
    user_vectors = synthetic_vectors(N_USERS, 256, rng)
    seen = rng.integers(0, n_items, (N_USERS, SEEN_PER_USER)).astype(np.int32)
    choice = build_index(item_vectors, user_vectors, IndexConfig(kind=index_kind, n_queries=500))
    arrays = {
        md.ITEM_IDS: np.array([f"i{i}" for i in range(n_items)]),
        md.USER_IDS: np.array([f"u{u}" for u in range(N_USERS)]),
        md.ITEM_VECTORS: item_vectors,
        md.USER_VECTORS: user_vectors,
        md.SEEN_INDPTR: np.arange(0, N_USERS * SEEN_PER_USER + 1, SEEN_PER_USER, dtype=np.int64),
        md.SEEN_ITEMS: seen.reshape(-1),
        md.POPULAR_ITEMS: np.arange(n_items, dtype=np.int32),
        md.POPULAR_SCORES: np.full(n_items, 1.0 / n_items, dtype=np.float32),
    }
    manifest = {
        "source": {"synthetic": True, "seed": seed}, "config": {}, "metrics": {},
        "n_users": N_USERS, "n_items": n_items, "embedding_dim": DIM, "user_tower": None,
        "index": {"file": md.ITEM_INDEX, **choice.manifest()}, "attributes": [],
    }
    blobs = {md.ITEM_INDEX: faiss.serialize_index(choice.index).tobytes()}
    return md.write_model_dir(out, arrays=arrays, blobs=blobs, manifest=manifest, overwrite=True)


def index_search_us(model_dir: Path, n_queries: int = 2_000) -> dict[str, float]:
    """Time the server's index search alone (one query, k + seen candidates, one thread) on the same users.

    The search includes what the server's ``ItemIndex`` adds to the FAISS call: the query
    transform and the exact re-scoring of the candidates.
    """
    from serving.model import ServingModel
    from serving.server import configure_threads

    configure_threads()
    model = ServingModel.load(model_dir, verify=False)
    timings = []
    for user in range(n_queries):
        xq = np.asarray(model.user_vectors[user % N_USERS : user % N_USERS + 1])
        started = time.perf_counter()
        model.index.search(xq, K + SEEN_PER_USER)
        timings.append((time.perf_counter() - started) * 1e6)
    return {"p50": float(np.percentile(timings, 50)), "p99": float(np.percentile(timings, 99))}


def _load_process(port: int, concurrency: int, seconds: float, seed: int, queue) -> None:
    import grpc

    from serving._proto.recsearch.v1 import recommender_pb2 as pb
    from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc

    async def run() -> list[float]:
        latencies: list[float] = []
        errors = 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RecommenderServiceStub(channel)
            rng = np.random.default_rng(seed)
            end = time.perf_counter() + seconds

            async def client() -> None:
                nonlocal errors
                while time.perf_counter() < end:
                    request = pb.RecommendRequest(user_id=f"u{int(rng.integers(N_USERS))}", k=K)
                    started = time.perf_counter()
                    try:
                        await stub.Recommend(request, timeout=5)
                        latencies.append(time.perf_counter() - started)
                    except grpc.RpcError:
                        errors += 1

            await asyncio.gather(*(client() for _ in range(concurrency)))
        return latencies, errors

    queue.put(asyncio.run(run()))


def drive(port: int, concurrency: int, seconds: float, n_processes: int) -> dict[str, float]:
    """Keep ``concurrency`` requests in flight from ``n_processes`` processes for ``seconds``."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    shares = [concurrency // n_processes + (i < concurrency % n_processes) for i in range(n_processes)]
    processes = [
        context.Process(target=_load_process, args=(port, share, seconds, i, queue)) for i, share in enumerate(shares) if share
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    latencies = np.concatenate([np.asarray(r[0]) for r in results]) * 1e3  # ms
    return {
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "rps": len(latencies) / seconds,
        "errors": sum(r[1] for r in results),
    }


H2LOAD_HEADERS = ("-H", "content-type: application/grpc", "-H", "te: trailers")


def _grpc_frame(body: bytes) -> bytes:
    """Wrap a serialized message in gRPC's length-prefixed frame (no compression)."""
    return b"\x00" + struct.pack(">I", len(body)) + body


def _reply_bytes(port: int, user_id: str) -> int:
    """Return the size of the framed reply to one Recommend, requested once through the Python client."""
    import grpc

    from serving._proto.recsearch.v1 import recommender_pb2 as pb
    from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = pb_grpc.RecommenderServiceStub(channel).Recommend(pb.RecommendRequest(user_id=user_id, k=K), timeout=10)
    return len(_grpc_frame(reply.SerializeToString()))


def drive_h2load(port: int, concurrency: int, seconds: float, scratch: Path, seed: int = 0) -> dict[str, float]:
    """Keep ``concurrency`` requests in flight with h2load, one connection and one user per process.

    h2load (nghttp2's HTTP/2 load generator, in C) costs about 20 µs of CPU per request
    here against about 230 µs for the Python client, so it leaves the cores to the server.
    It checks HTTP statuses only, and gRPC errors travel in HTTP 200 replies without a
    body: every reply's size is compared with the size of that user's known good reply.
    """
    from serving._proto.recsearch.v1 import recommender_pb2 as pb

    url = f"http://127.0.0.1:{port}/recsearch.v1.RecommenderService/Recommend"
    users = np.random.default_rng(seed).choice(N_USERS, concurrency, replace=False)
    runs = []
    for slot, user in enumerate(users):
        body, log = scratch / f"request-{slot}.bin", scratch / f"latency-{slot}.tsv"
        body.write_bytes(_grpc_frame(pb.RecommendRequest(user_id=f"u{user}", k=K).SerializeToString()))
        log.unlink(missing_ok=True)
        command = ["h2load", "-D", f"{seconds:g}", "-c", "1", "-m", "1", "-t", "1",
                   f"--log-file={log}", "-d", str(body), *H2LOAD_HEADERS, url]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        runs.append((process, log, _reply_bytes(port, f"u{user}")))
    latencies, n_done, errors = [], 0, 0
    for process, log, reply_bytes in runs:
        output = process.communicate(timeout=seconds + 60)[0]
        done = int(re.search(r"(\d+) done", output).group(1))
        succeeded = int(re.search(r"(\d+) succeeded", output).group(1))  # HTTP 2xx among the done
        data = int(re.search(r"\((\d+)\) data", output).group(1))
        n_done += done
        # Every good reply to this process's one user has the same size, so any other byte
        # count means errors: at least one, and one per missing or extra reply's worth of bytes.
        mismatch = abs(succeeded * reply_bytes - data)
        errors += (done - succeeded) + (0 if mismatch == 0 else max(1, -(-mismatch // reply_bytes)))
        rows = np.loadtxt(log, dtype=np.int64, ndmin=2)
        latencies.append(rows[:, 2] / 1e3)  # µs to ms
    latency = np.concatenate(latencies)
    return {
        "p50_ms": float(np.percentile(latency, 50)),
        "p99_ms": float(np.percentile(latency, 99)),
        "rps": n_done / seconds,
        "errors": errors,
    }


def server_cpu_seconds(process: subprocess.Popen) -> float:
    """Return the CPU time (user + system) that the server and its worker processes have used so far."""
    import psutil

    server = psutil.Process(process.pid)
    total = 0.0
    for member in [server, *server.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def start_server(model_dir: Path, workers: int) -> tuple[subprocess.Popen, int]:
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "recsearch.cli.main", "serve", str(model_dir), "--port", "0",
         "--workers", str(workers), "--no-verify", "--reload-interval", "0"],
        cwd=root, stderr=subprocess.PIPE, text=True,
    )
    for line in process.stderr:
        event = json.loads(line)
        if event.get("event") == "start" and "workers" in event:  # the supervisor's line: every worker is up
            # Keep reading the log, so that a full pipe never blocks the server.
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process, int(event["port"])
    raise RuntimeError("the server exited before starting")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--workers", type=int, default=2, help="server processes (default: 2)")
    parser.add_argument("--load-generator", choices=("auto", "h2load", "python"), default="auto",
                        help="h2load (nghttp2-client) or the Python gRPC client; auto takes h2load when installed")
    parser.add_argument("--load-processes", type=int, default=2,
                        help="processes of the Python load generator (default: 2)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each concurrency level (default: 5)")
    parser.add_argument("--index", default="auto", choices=INDEX_KINDS,
                        help="index kind that export builds (default: auto, as `recsearch export` chooses)")
    parser.add_argument("--no-write", action="store_true", help="print the table without updating BENCHMARKS.md")
    args = parser.parse_args()
    generator = args.load_generator
    if generator == "auto":
        generator = "h2load" if shutil.which("h2load") else "python"
    elif generator == "h2load" and not shutil.which("h2load"):
        parser.error("h2load is not installed; install nghttp2-client (Debian, Ubuntu) or pass --load-generator python")

    def run_level(port: int, concurrency: int, seconds: float, scratch: Path) -> dict[str, float]:
        if generator == "h2load":
            return drive_h2load(port, concurrency, seconds, scratch)
        return drive(port, concurrency, seconds, 1 if concurrency == 1 else args.load_processes)

    rows = []
    with tempfile.TemporaryDirectory(prefix="recsearch-serving-bench-") as scratch:
        for n_items in args.sizes:
            model_dir = Path(scratch) / f"model-{n_items}"
            started = time.perf_counter()
            manifest = write_model(model_dir, n_items, seed=0, index_kind=args.index)
            write_s = time.perf_counter() - started
            index_search = index_search_us(model_dir)
            index = manifest["index"]
            process, port = start_server(model_dir, args.workers)
            try:
                for concurrency in args.concurrency:
                    run_level(port, concurrency, 1.0, Path(scratch))  # warm-up
                    cpu_before = server_cpu_seconds(process)
                    result = run_level(port, concurrency, args.seconds, Path(scratch))
                    # CPU per request counts what the server spent, whatever else ran on the machine.
                    n_requests = max(1.0, result["rps"] * args.seconds)
                    result["server_cpu_us"] = (server_cpu_seconds(process) - cpu_before) * 1e6 / n_requests
                    row = {"n_items": n_items, "concurrency": concurrency, "index": index["kind"],
                           "transform": index.get("transform"), "params": index["params"],
                           "recall": index["recall_at_10"], "build_s": index.get("build_seconds"), "write_s": write_s,
                           "index_p50_us": index_search["p50"], "index_p99_us": index_search["p99"], **result}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)

    if generator == "h2load":
        load = ("h2load (nghttp2-client, C): one HTTP/2 connection per request in flight, each repeating "
                "the Recommend of one random known user, so concurrency c asks for c different users")
    else:
        load = (f"the Python gRPC client in {args.load_processes} processes, each request for a random known user")
    lines = [
        f"Script: `benchmarks/serving_benchmark.py` (`--workers {args.workers}`, `--load-generator {generator}`, "
        f"{args.seconds:.0f} s per level). Machine: {machine_line()}; load generator and server on the same "
        f"machine over loopback. Date: {date.today().isoformat()}.",
        "",
        f"Synthetic clustered vectors of dimension {DIM}, {N_USERS:,} users with {SEEN_PER_USER} seen items each; "
        f"every request is Recommend(k={K}). Load: {load}. The index is the one export builds with "
        f"`--index {args.index}` (auto: exact up to 50,000 items, else IVF-SQ8 over the MIPS-to-L2 reduction "
        "padded to a multiple of 8 dimensions), tuned to recall@10 >= 0.95 against exact inner-product search on "
        "500 user vectors; build = its training and construction time. Index columns: the server's index search "
        "alone (k + seen candidates, one thread, exact re-scoring included) for 2,000 random users, same run; "
        "ratio = server p50 / index p50.",
        "",
        "| items | index | recall@10 | build s | concurrency | p50 ms | p99 ms | requests/s | server CPU us/request "
        "| index p50 us | ratio | errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        settings = [f"{k}={v}" for k, v in row["params"].items()] + ([row["transform"]] if row["transform"] else [])
        index = f"{row['index']} ({', '.join(settings)})" if settings else row["index"]
        build = f"{row['build_s']:.0f}" if row["build_s"] is not None else "–"
        lines.append(
            f"| {row['n_items']:,} | {index} | {row['recall']:.3f} | {build} | "
            f"{row['concurrency']} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['rps']:,.0f} | "
            f"{row['server_cpu_us']:.0f} | {row['index_p50_us']:.0f} | {row['p50_ms'] * 1e3 / row['index_p50_us']:.1f} | {row['errors']} |"
        )
    lines += [
        "",
        "Where the time goes (one server process, h2load with 16 connections, 6 s each, measured once on the "
        "same machine): a bare grpc.aio server whose handler returns a fixed 180-byte reply answered 10,649 "
        "requests/s on uvloop and 5,917 on asyncio's own loop (94 and 169 µs per request), which is why the "
        "server runs on uvloop. The recsearch servicer returning a fixed reply answered 10,770/s, with the 10,000-"
        "item flat search added about 3,000/s, and the whole handler about 2,000/s. The search took 130 µs inside "
        "the server, as alone, yet each search added 230-280 µs per request. With two such servers sharing the "
        "port and the two cores, the same search took about 185 µs inside each: the flat scan reads 2.5 MB per "
        "query, so the processes likely compete for memory bandwidth and cache. h2load used about 20 µs of "
        "CPU per request, the Python client about 230 µs. The server CPU column counts every server process: two "
        "workers on two cores spend more per request than one worker alone (about 450 µs at 10,000 items).",
        "",
        "Measured again on 2026-12-05 with `benchmarks/serving_overhead.py` (10,000 items, flat index, h2load "
        "at concurrency 32, 6 s per mode), which swaps the server's index search for stand-ins. One worker: the "
        "real FAISS search (102 µs alone) gave 1,598 requests/s at 748 µs of server CPU each; a Python loop "
        "spinning as long with the interpreter lock held, 2,395/s at 498 µs; SHA-256 work as long with the lock "
        "released, 2,333/s at 516 µs; cached results, no search at all, 3,052/s at 399 µs. An earlier run gave "
        "the same order (2,112, 2,067 and 2,959/s). So releasing the lock costs little, and the flat scan's "
        "2.5 MB of reads per query likely slows the rest of the request through the caches. Two workers: "
        "2,412/s with the real search, 3,947/s with no search (447 µs each): over 32 connections, Python gRPC "
        "alone takes about all of the 4,000 requests/s goal on two cores. Answering the calls of one "
        "event-loop turn with one search was tried and dropped: grpc.aio handed over one call per turn "
        "(10,393 turns for 10,494 calls).",
    ]
    body = "## Serving\n\n" + "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("serving", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
