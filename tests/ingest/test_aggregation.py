from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from recsearch.ingest.kcore import kcore_filter

from .conftest import interactions, run, write_text


def test_repeated_pairs_aggregated(tmp_path):
    source = write_text(
        tmp_path / "log.csv",
        "user_id,item_id,event,timestamp\n"
        "a,x,view,1700000000\na,x,view,1700000300\na,x,buy,1700000600\nb,x,view,1700000100\n",
    )
    result = run(tmp_path, source, event_weights={"view": 1, "buy": 5}, split="random")
    row = interactions(result).filter(pl.col("user_id") == "a").row(0, named=True)
    assert row["n_events"] == 3
    assert row["weight"] == 7.0
    assert row["first_time"] == datetime.fromtimestamp(1700000000, timezone.utc)
    assert row["last_time"] == datetime.fromtimestamp(1700000600, timezone.utc)
    assert result.report.events_merged == 2
    assert result.report.pairs == 2


def test_exact_duplicate_events_merged_and_counted(tmp_path):
    source = write_text(
        tmp_path / "log.csv",
        "user_id,item_id,event,timestamp\na,x,view,1700000000\na,x,view,1700000000\na,x,view,1700000001\n",
    )
    result = run(tmp_path, source, split="random")
    assert result.report.dropped_rows == {"duplicate_event": 1}
    assert interactions(result)["n_events"].to_list() == [2]

    kept = run(tmp_path / "keep", source, split="random", dedupe=False)
    assert kept.report.dropped_rows == {}
    assert interactions(kept)["n_events"].to_list() == [3]


def test_without_timestamps_repeats_are_summed_not_deduplicated(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,qty\na,x,2\na,x,2\n")
    result = run(tmp_path, source, weight_col="qty")
    assert result.report.dropped_rows == {}
    assert interactions(result)["weight"].to_list() == [4.0]


def _pairs(edges: list[tuple[str, str]]) -> pl.DataFrame:
    users, items = zip(*edges)
    return pl.DataFrame({"user_idx": users, "item_idx": items, "n_events": [1] * len(edges)})


def test_kcore_iterates_until_stable():
    # Item c has one user, so removing it leaves u3 with one item. Removing u3 leaves
    # item b with one user, and removing b leaves u1 with one item: a chain that a
    # single pass cannot follow.
    edges = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "d"), ("u4", "d"), ("u4", "a"),
             ("u3", "b"), ("u3", "c")]
    result = kcore_filter(_pairs(edges), min_user=2, min_item=2)
    kept = sorted(zip(result.pairs["user_idx"], result.pairs["item_idx"]))
    assert kept == [("u2", "a"), ("u2", "d"), ("u4", "a"), ("u4", "d")]
    assert result.iterations >= 2
    assert result.pairs_removed == 4
    assert result.users_removed == 2
    assert result.items_removed == 2


def test_kcore_result_satisfies_thresholds(small_log, tmp_path):
    from recsearch.datasets import write_clicklog

    result = run(tmp_path, write_clicklog(small_log, tmp_path / "log.parquet"),
                 min_user_interactions=5, min_item_interactions=5)
    table = pl.read_parquet(result.out / "interactions.parquet")
    assert table.group_by("user_idx").len()["len"].min() >= 5
    assert table.group_by("item_idx").len()["len"].min() >= 5
    assert result.report.kcore["pairs_removed"] > 0
    assert result.report.events_valid == result.report.events_in_interactions + result.report.kcore["events_removed"]
