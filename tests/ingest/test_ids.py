from __future__ import annotations

import polars as pl

from .conftest import interactions, run, write_text


def test_ids_kept_exactly_as_written(tmp_path):
    ids = ["007", "7", "3f2b8c1e-9d4a-4e2f-8a1b-6c5d4e3f2a1b", "Ünïcødé-ユーザー", "12.50", "42"]
    lines = [f"{user},{item}" for user in ids for item in ids[:3]]
    source = write_text(tmp_path / "log.csv", "user_id,item_id\n" + "\n".join(lines) + "\n")
    result = run(tmp_path, source, split="random")
    users = pl.read_parquet(result.out / "users.parquet")
    items = pl.read_parquet(result.out / "items.parquet")
    assert sorted(users["user_id"].to_list()) == sorted(ids)
    assert sorted(items["item_id"].to_list()) == sorted(ids[:3])
    assert users["user_idx"].to_list() == list(range(len(ids)))


def test_parquet_integer_ids_become_text(tmp_path):
    pl.DataFrame({"user_id": [1, 2, 2], "item_id": [10, 10, 11]}).write_parquet(tmp_path / "log.parquet")
    result = run(tmp_path, tmp_path / "log.parquet", split="random")
    assert sorted(interactions(result)["item_id"].unique().to_list()) == ["10", "11"]


def test_vocabulary_ordered_by_frequency(tmp_path):
    lines = ["a,rare", "a,hit", "b,hit", "c,hit", "b,mid", "c,mid"]
    source = write_text(tmp_path / "log.csv", "user_id,item_id\n" + "\n".join(lines) + "\n")
    result = run(tmp_path, source, split="random")
    items = pl.read_parquet(result.out / "items.parquet").sort("item_idx")
    assert items["item_id"].to_list() == ["hit", "mid", "rare"]
    assert items["n_interactions"].to_list() == [3, 2, 1]


def test_blank_id_is_a_bad_row(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n  ,y\nb,\n")
    result = run(tmp_path, source, on_bad_rows="drop", split="random")
    assert result.report.dropped_rows == {"null_item_id": 1, "null_user_id": 1}
