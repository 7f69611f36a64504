"""The whole pipeline (`recsearch run`) on real public datasets, then the served model queried on loopback.

For each dataset it runs `recsearch run` in a child process with the given search budget.
It reads the stage times and peak memory from pipeline.json, the test metrics of the
winner and the baselines from evaluation.json, and the index's recall from the manifest.
Then it starts `recsearch serve` on the exported model and times sequential Recommend
calls (known users, and session requests with recent items when the model reads history).

    python benchmarks/pipeline_benchmark.py --datasets ml1m taobao --timeout 900

The datasets live in ../shared/datasets beside the project; a missing one is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.page import machine_line, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
METRICS = ("ndcg@10", "recall@10", "recall@20", "mrr@10", "coverage@10")


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    options: tuple[str, ...]
    note: str


DATASETS = {
    "ml1m": Dataset(
        "MovieLens-1M", SHARED / "movielens-1m" / "ratings.csv", ("--preset", "movielens"),
        "ratings as implicit feedback; the stored copy has no timestamps, so the split is random per user",
    ),
    "taobao": Dataset(
        "Taobao UserBehavior (first 84k rows)", SHARED / "taobao-userbehavior-head84k" / "UserBehavior_head84k.csv.gz",
        ("--preset", "taobao", "--item-features", "category_id"),
        "click log (pv / fav / cart / buy weighted 1 / 2 / 3 / 5), leave-last-out split, item category as a feature",
    ),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_pipeline(dataset: Dataset, out: Path, args: argparse.Namespace) -> float:
    command = [
        sys.executable, "-m", "recsearch.cli.main", "-q", "run", str(dataset.path), "--out", str(out),
        *dataset.options, "--trials", str(args.trials), "--timeout", str(args.timeout),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def time_requests(model_dir: Path, n_requests: int, seed: int) -> dict[str, dict[str, float]]:
    """Start the server on a free loopback port and time sequential Recommend calls; return p50/p99 in ms."""
    import grpc

    from serving._proto.recsearch.v1 import recommender_pb2 as pb
    from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "recsearch.cli.main", "-q", "serve", str(model_dir), "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    rng = np.random.default_rng(seed)
    users = np.load(model_dir / "user_ids.npy", allow_pickle=False)
    items = np.load(model_dir / "item_ids.npy", allow_pickle=False)
    manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    kinds = {"known user": lambda: pb.RecommendRequest(user_id=str(users[rng.integers(len(users))]), k=10)}
    if manifest.get("user_tower"):
        kinds["session, 5 recent items"] = lambda: pb.RecommendRequest(
            user_id="benchmark-visitor", k=10, recent_item_ids=[str(i) for i in items[rng.integers(len(items), size=5)]]
        )
    results: dict[str, dict[str, float]] = {}
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
            stub = pb_grpc.RecommenderServiceStub(channel)
            for kind, make in kinds.items():
                for _ in range(50):  # warm-up
                    stub.Recommend(make(), timeout=10)
                latencies = []
                for _ in range(n_requests):
                    request = make()
                    started = time.perf_counter()
                    stub.Recommend(request, timeout=10)
                    latencies.append(time.perf_counter() - started)
                ms = np.array(latencies) * 1000
                results[kind] = {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}
    finally:
        server.terminate()
        server.wait(timeout=60)
    return results


def section(dataset: Dataset, out: Path, wall: float, latency: dict, args: argparse.Namespace) -> str:
    state = json.loads((out / "pipeline.json").read_text(encoding="utf-8"))["stages"]
    evaluation = json.loads((out / "run" / "evaluation.json").read_text(encoding="utf-8"))
    manifest = json.loads((out / "run" / "model" / "manifest.json").read_text(encoding="utf-8"))
    data = state["ingest"]["summary"]
    search = state["search"]["summary"]
    index = manifest["index"]

    lines = [
        f"### {dataset.name}",
        "",
        f"{data['n_users']:,} users, {data['n_items']:,} items, {data['n_interactions']:,} interactions; {dataset.note}. "
        f"Budget: `--trials {args.trials} --timeout {args.timeout:g}` (a trial's training stops after a third of it). "
        f"Trials: {', '.join(f'{n} {s}' for s, n in search['trials'].items() if n)}; the winner is trial "
        f"{search['winner_trial']} (validation NDCG@10 {search['winner_validation_ndcg@10']:.4f}).",
        "",
        "| model (test split, full ranking, seen items excluded) | " + " | ".join(METRICS) + " |",
        "|---|" + "---:|" * len(METRICS),
    ]

    rows = [("winner, trained on train", evaluation["winner_test"]),
            ("winner refit on train + validation", evaluation["refit_test"])]
    rows += [(name, metrics) for name, metrics in evaluation["baselines"].items()]
    for name, metrics in rows:
        lines.append(f"| {name} | " + " | ".join(f"{metrics.get(m, float('nan')):.4f}" for m in METRICS) + " |")

    not_beaten = evaluation.get("baselines_not_beaten") or []
    verdict = "it beats every baseline." if not not_beaten else f"it does not beat {', '.join(not_beaten)}."
    comparison = json.loads((out / "run" / "report.json").read_text(encoding="utf-8"))["comparison"]
    missing = [name for name in ("most_popular", "item_knn", "ease", "ials") if name not in evaluation["baselines"]]
    lines += [
        "",
        f"Verdict on NDCG@10 (the winner trained on train, like the baselines): {verdict}",
        f"The report's bootstrap test over {comparison['n_users']:,} test users: {comparison['verdict']}"
        + (f" Not run: {', '.join(missing)} (see the run's log for why)." if missing else ""),
        "",
        "| stage | seconds | peak memory of the process so far (MiB) |",
        "|---|---:|---:|",
    ]

    for stage, record in state.items():
        lines.append(f"| {stage} | {record['seconds']:,.1f} | {record['peak_rss_mib']:,.0f} |")
    lines += [
        f"| whole command | {wall:,.1f} | |",
        "",
        f"Index: {index['kind']} {json.dumps(index.get('params') or {})}, recall@10 {index['recall_at_10']:.3f} against "
        f"exact search on {index.get('recall_queries', 0):,} user vectors, search p50 "
        f"{index['search_latency_us']['p50']:.0f} µs at export.",
        "",
        f"Serving (`recsearch serve`, one worker, sequential calls from one client on loopback, {args.requests:,} each):",
        "",
        "| request | p50 (ms) | p99 (ms) |",
        "|---|---:|---:|",
    ]

    for kind, figures in latency.items():
        lines.append(f"| {kind} | {figures['p50']:.2f} | {figures['p99']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["ml1m", "taobao"])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=900.0, help="search seconds per dataset")
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--out-root", type=Path, default=Path("/tmp/recsearch-pipeline-benchmark"))
    parser.add_argument("--reuse", action="store_true",
                        help="take finished runs under --out-root as they are and only time the serving again")
    parser.add_argument("--no-page", action="store_true")
    args = parser.parse_args()

    parts = [
        "## Full pipeline on real data (`benchmarks/pipeline_benchmark.py`)",
        "",
        f"Run on {date.today().isoformat()}: {machine_line()}, CPU only, "
        f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}`. One `recsearch run` per dataset in a "
        "child process, then `recsearch serve` on its model. The search stage's seconds include the winner's "
        "refit, the model retrained on every interaction for export, and the baselines.",
    ]
    for key in args.datasets:
        dataset = DATASETS[key]
        if not dataset.path.is_file():
            print(f"skipping {dataset.name}: {dataset.path} not found")
            continue
        out = args.out_root / key
        if args.reuse and (out / "pipeline.json").is_file():
            wall = float(json.loads((out / "wall.json").read_text(encoding="utf-8"))["seconds"])
        else:
            shutil.rmtree(out, ignore_errors=True)  # a fresh run: an existing one would be resumed, not timed
            wall = run_pipeline(dataset, out, args)
            (out / "wall.json").write_text(json.dumps({"seconds": wall}), encoding="utf-8")
        latency = time_requests(out / "run" / "model", args.requests, seed=0)
        text = section(dataset, out, wall, latency, args)
        print(text)
        parts += ["", text]
    if not args.no_page:
        write_section("pipeline", "\n".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
