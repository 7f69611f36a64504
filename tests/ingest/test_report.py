from __future__ import annotations

import json

import polars as pl

from recsearch.data import load_dataset
from recsearch.datasets import write_clicklog

from .conftest import run, write_text


def test_every_row_accounted_for(tmp_path, small_log):
    noisy = pl.concat(
        [
            small_log,
            small_log.head(5),  # exact duplicates
            small_log.head(3).with_columns(pl.lit("").alias("user_id")),
            small_log.head(2).with_columns(pl.lit("later").alias("timestamp").cast(pl.String)),
            small_log.head(4).with_columns(pl.lit("share").alias("event")),
        ],
        how="vertical_relaxed",
    )
    source = write_clicklog(noisy, tmp_path / "log.csv")
    result = run(
        tmp_path,
        source,
        event_weights={"view": 1, "addtocart": 3, "purchase": 5},
        unknown_events="drop",
        on_bad_rows="drop",
        min_user_interactions=3,
    )
    report = result.report
    assert report.rows_read == noisy.height
    assert report.dropped_rows == {
        "duplicate_event": 5,
        "null_user_id": 3,
        "unparseable_timestamp": 2,
        "unknown_event": 4,
    }
    assert report.rows_read == report.events_valid + sum(report.dropped_rows.values())

    interactions = pl.read_parquet(result.out / "interactions.parquet")
    assert report.events_in_interactions == interactions["n_events"].sum()
    assert report.events_valid == report.events_in_interactions + report.kcore["events_removed"]
    assert report.interactions == interactions.height == report.pairs - report.kcore["pairs_removed"]

    split_pairs = sum(pl.read_parquet(result.out / f"{n}.parquet").height for n in ("train", "validation", "test"))
    assert split_pairs + sum(report.dropped_split_pairs.values()) == report.interactions

    written = json.loads((result.out / "ingest_report.json").read_text())
    assert written["dropped_rows"] == report.dropped_rows


def test_manifest_describes_dataset(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1700000000\na,y,1700000100\nb,x,1700000200\n")
    result = run(tmp_path, source)
    manifest = json.loads((result.out / "dataset.json").read_text())
    assert manifest["format"] == "recsearch.dataset"
    assert manifest["format_version"] == 1
    assert manifest["n_users"] == 2
    assert manifest["n_items"] == 2
    assert manifest["n_interactions"] == 3
    assert manifest["sources"][0]["bytes"] == source.stat().st_size
    assert len(manifest["sources"][0]["sha256"]) == 64
    assert manifest["time_range"] == {"min": "2023-11-14T22:13:20+00:00", "max": "2023-11-14T22:16:40+00:00"}
    assert manifest["ingest_config"]["input"] == str(source)
    dataset = load_dataset(result.out)
    assert dataset.n_users == 2
    assert len(dataset.train) + len(dataset.validation) + len(dataset.test) <= 3
