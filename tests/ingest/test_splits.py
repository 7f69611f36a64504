from __future__ import annotations

import polars as pl
import pytest

from recsearch.datasets import write_clicklog
from recsearch.errors import InputError

from .conftest import run, write_text


def _splits(result) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(result.out / f"{name}.parquet") for name in ("train", "validation", "test")}


@pytest.fixture()
def clicklog(tmp_path, small_log):
    return write_clicklog(small_log, tmp_path / "log.parquet")


def test_leave_last_out_has_no_leakage(tmp_path, clicklog):
    result = run(tmp_path, clicklog, split="leave-last-out")
    parts = _splits(result)
    train_last = parts["train"].group_by("user_idx").agg(pl.col("last_time").max().alias("train_last"))
    for name in ("validation", "test"):
        joined = parts[name].join(train_last, on="user_idx")
        assert joined.height == parts[name].height
        assert (joined["first_time"] >= joined["train_last"]).all(), name
    validation = parts["validation"].select("user_idx", pl.col("last_time").alias("validation_last"))
    joined = parts["test"].join(validation, on="user_idx")
    assert (joined["first_time"] >= joined["validation_last"]).all()
    assert parts["test"]["user_idx"].is_unique().all()
    assert parts["validation"]["user_idx"].is_unique().all()


def test_leave_last_out_holds_out_latest_item(tmp_path):
    source = write_text(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp\n"
        "a,old,100000000\na,mid,100000100\na,new,100000200\na,old,100000300\n"
        "b,old,100000000\nb,mid,100000050\nb,new,100000060\n"
        # c puts old, mid and new into training; c's own held-out items x and y are cold.
        "c,new,90000000\nc,mid,90000001\nc,old,90000002\nc,x,90000003\nc,y,90000004\n",
    )
    result = run(tmp_path, source)
    items = pl.read_parquet(result.out / "items.parquet").select("item_idx", "item_id")
    parts = {k: v.join(items, on="item_idx") for k, v in _splits(result).items()}
    assert sorted(parts["test"]["item_id"].to_list()) == ["new", "new"]
    assert sorted(parts["validation"]["item_id"].to_list()) == ["mid", "mid"]
    assert result.report.dropped_split_pairs == {"validation_cold_item": 1, "test_cold_item": 1}
    # a's repeat view of "old" after the validation time is dropped and counted.
    assert result.report.dropped_split_events == {"after_user_holdout_time": 1}


def test_temporal_split_respects_cut(tmp_path, clicklog):
    result = run(tmp_path, clicklog, split="temporal", test_fraction=0.2, validation_fraction=0.1)
    parts = _splits(result)
    test_cut = pl.Series([result.report.split["test_cut"]]).str.to_datetime(time_zone="UTC")[0]
    validation_cut = pl.Series([result.report.split["validation_cut"]]).str.to_datetime(time_zone="UTC")[0]
    assert parts["train"]["last_time"].max() < validation_cut
    assert parts["validation"]["first_time"].min() >= validation_cut
    assert parts["validation"]["last_time"].max() < test_cut
    assert parts["test"]["first_time"].min() >= test_cut
    train_users = set(parts["train"]["user_idx"])
    train_items = set(parts["train"]["item_idx"])
    for name in ("validation", "test"):
        assert set(parts[name]["user_idx"]) <= train_users
        assert set(parts[name]["item_idx"]) <= train_items
    dropped = result.report.dropped_split_pairs
    assert dropped["test_cold_user"] + dropped["test_cold_item"] + dropped["test_pair_seen_before"] > 0


def test_temporal_cut_by_date(tmp_path):
    source = write_text(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp\n"
        "a,x,2024-01-01\na,y,2024-01-02\nb,x,2024-01-03\nb,y,2024-02-10\na,z,2024-02-11\nc,x,2024-02-12\n",
    )
    result = run(tmp_path, source, split="temporal", test_cut="2024-02-01")
    parts = _splits(result)
    assert parts["train"].height == 3
    assert parts["test"].height == 1  # b,y; a,z has a cold item and c is a cold user
    assert result.report.dropped_split_pairs["test_cold_item"] == 1
    assert result.report.dropped_split_pairs["test_cold_user"] == 1


def test_random_split_seeded_and_keeps_training(tmp_path, clicklog):
    first = run(tmp_path / "a", clicklog, split="random", seed=3)
    second = run(tmp_path / "b", clicklog, split="random", seed=3)
    other = run(tmp_path / "c", clicklog, split="random", seed=4)
    assert _splits(first)["test"].equals(_splits(second)["test"])
    assert not _splits(first)["test"].equals(_splits(other)["test"])
    parts = _splits(first)
    all_users = set(pl.read_parquet(first.out / "interactions.parquet")["user_idx"])
    assert set(parts["train"]["user_idx"]) == all_users
    held = parts["validation"].height + parts["test"].height + sum(first.report.dropped_split_pairs.values())
    share = held / first.report.interactions
    assert 0.15 < share < 0.3
    pairs = pl.concat([p.select("user_idx", "item_idx") for p in parts.values()])
    assert pairs.is_unique().all()


def test_split_needing_time_rejected_without_timestamps(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\na,y\n")
    with pytest.raises(InputError, match="needs timestamps"):
        run(tmp_path, source, split="leave-last-out")
    result = run(tmp_path, source)
    assert result.manifest["split"]["kind"] == "random"
    assert result.manifest["has_timestamps"] is False
