"""Ingestion throughput and peak memory: recsearch (Polars) against the same work in pandas.

Generates a synthetic click log (10 million rows by default) as CSV, then runs, each
in its own child process so peak memory is measured separately:

- ``recsearch``: the full `recsearch ingest` pipeline (leave-last-out split);
- ``pandas``: the same steps written with pandas: read, parse times, weight events,
  drop duplicate events, aggregate pairs, build frequency-ordered vocabularies and a
  leave-last-out split with the same truncation of late training events.

Prints rows per second and peak resident memory, and writes them to BENCHMARKS.md.
Usage: python benchmarks/ingest_benchmark.py [--rows 10000000] [--no-page]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

WEIGHTS = {"view": 1.0, "addtocart": 3.0, "purchase": 5.0}


def run_recsearch(log: Path, out: Path) -> dict:
    from recsearch.ingest import IngestConfig, ingest

    started = time.perf_counter()
    result = ingest(IngestConfig(input=log, out=out, event_weights=WEIGHTS, overwrite=True))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "interactions": result.report.interactions, "test": result.report.split_counts["test"]}


def run_pandas(log: Path, out: Path) -> dict:
    import numpy as np
    import pandas as pd

    started = time.perf_counter()
    events = pd.read_csv(log, dtype={"user_id": str, "item_id": str, "event": str, "session_id": str,
                                     "category": str, "brand": str})
    events["time"] = pd.to_datetime(events["timestamp"], unit="s", utc=True)
    events["weight"] = events["event"].str.lower().map(WEIGHTS)
    events = events.drop_duplicates(subset=["user_id", "item_id", "time", "event", "weight", "session_id"])

    pairs = events.groupby(["user_id", "item_id"], sort=False).agg(
        weight=("weight", "sum"), n_events=("weight", "size"), first_time=("time", "min"), last_time=("time", "max")
    ).reset_index()
    vocabularies = {}
    for column in ("user_id", "item_id"):
        counts = pairs[column].value_counts()
        order = counts.reset_index().sort_values(["count", column], ascending=[False, True])
        vocabularies[column] = pd.Series(np.arange(len(order), dtype=np.int32), index=order[column].to_numpy())
        pairs[column.replace("_id", "_idx")] = pairs[column].map(vocabularies[column])

    pairs = pairs.sort_values(["user_idx", "first_time", "last_time", "item_idx"])
    position = pairs.groupby("user_idx").cumcount()
    size = pairs.groupby("user_idx")["item_idx"].transform("size")
    from_end = size - 1 - position
    pairs["role"] = np.where((from_end == 0) & (size >= 2), "test",
                             np.where((from_end == 1) & (size >= 3), "validation", "train"))
    cuts = pairs.pivot_table(index="user_idx", columns="role", values="first_time", aggfunc="first")
    events["user_idx"] = events["user_id"].map(vocabularies["user_id"])
    events["item_idx"] = events["item_id"].map(vocabularies["item_id"])
    tagged = events.merge(pairs[["user_idx", "item_idx", "role"]], on=["user_idx", "item_idx"])
    tagged = tagged.merge(cuts, left_on="user_idx", right_index=True, how="left")
    limit = tagged["validation"].fillna(tagged["test"]) if "validation" in tagged else tagged["test"]
    keep = np.where(tagged["role"] == "train", limit.isna() | (tagged["time"] <= limit),
                    np.where(tagged["role"] == "validation", tagged["test"].isna() | (tagged["time"] <= tagged["test"]), True))
    kept = tagged[keep]
    parts = {
        role: kept[kept["role"] == role].groupby(["user_idx", "item_idx"]).agg(
            weight=("weight", "sum"), n_events=("weight", "size"), first_time=("time", "min"), last_time=("time", "max")
        ).reset_index()
        for role in ("train", "validation", "test")
    }
    out.mkdir(parents=True, exist_ok=True)
    for role, frame in parts.items():
        frame.to_parquet(out / f"{role}.parquet")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "interactions": len(pairs), "test": len(parts["test"])}


def child(kind: str, log: str, out: str) -> None:
    runner = run_recsearch if kind == "recsearch" else run_pandas
    figures = runner(Path(log), Path(out))
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(figures))


def measure(kind: str, log: Path, out: Path) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(log), str(out)], capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="approximate log size (default: 10M)")
    parser.add_argument("--no-page", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from recsearch.datasets import SyntheticConfig, generate_clicklog, write_clicklog

    with tempfile.TemporaryDirectory(prefix="recsearch-bench-") as scratch:
        log = Path(scratch) / "clicks.csv"
        frame = generate_clicklog(SyntheticConfig.for_events(args.rows, seed=0))
        rows = frame.height
        write_clicklog(frame, log)
        del frame
        size_mib = log.stat().st_size / 2**20
        print(f"log: {rows:,} rows, {size_mib:,.0f} MiB CSV")

        results = {}
        for kind in ("recsearch", "pandas"):
            results[kind] = measure(kind, log, Path(scratch) / f"out-{kind}")
            figures = results[kind]
            print(f"{kind:9s} {figures['seconds']:7.1f} s  {rows / figures['seconds']:>12,.0f} rows/s  "
                  f"peak {figures['peak_rss_gib']:.2f} GiB  interactions {figures['interactions']:,}")

    ours, theirs = results["recsearch"], results["pandas"]
    speedup = theirs["seconds"] / ours["seconds"]
    memory = theirs["peak_rss_gib"] / ours["peak_rss_gib"]
    print(f"recsearch is {speedup:.1f}x faster than pandas and uses {memory:.1f}x less peak memory")
    if args.no_page:
        return

    from page import machine_line, write_section

    body = f"""## Ingestion (`benchmarks/ingest_benchmark.py`)

Run on {date.today().isoformat()}: {machine_line()}. Synthetic click log of {rows:,} rows
({size_mib:,.0f} MiB CSV), ingested with event weights and the leave-last-out split.
Both runs are child processes of one benchmark run, measured one after the other.

| implementation | seconds | rows per second | peak memory (GiB) |
|---|---:|---:|---:|
| recsearch ingest (Polars) | {ours['seconds']:.1f} | {rows / ours['seconds']:,.0f} | {ours['peak_rss_gib']:.2f} |
| same steps in pandas | {theirs['seconds']:.1f} | {rows / theirs['seconds']:,.0f} | {theirs['peak_rss_gib']:.2f} |

Ratio: recsearch is {speedup:.1f}x faster and peaks at {1 / memory:.2f}x the memory of pandas.
Both produce {ours['interactions']:,} interactions (pandas: {theirs['interactions']:,}) and
{ours['test']:,} test pairs before cold-item filtering (pandas: {theirs['test']:,}).
"""
    print(f"written to {write_section('ingest', body)}")


if __name__ == "__main__":
    main()
