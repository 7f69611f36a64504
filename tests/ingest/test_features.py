from __future__ import annotations

import polars as pl
import pytest

from recsearch.data import load_dataset
from recsearch.errors import InputError

from .conftest import run, write_text


def test_item_features_from_log_take_latest_value(tmp_path):
    source = write_text(
        tmp_path / "log.csv",
        "user_id,item_id,category,timestamp\n"
        "a,x,shoes,1700000000\nb,x,boots,1700000100\na,y,hats,1700000000\nb,y,,1700000050\n",
    )
    result = run(tmp_path, source, item_features=("category",), split="random")
    dataset = load_dataset(result.out)
    vocabulary = pl.read_parquet(result.out / "features" / "item.category.parquet")
    values = dict(zip(vocabulary["index"], vocabulary["value"]))
    by_item = dict(zip(dataset.item_ids, dataset.item_features["category"]))
    assert values[by_item["x"]] == "boots"
    assert values[by_item["y"]] == "hats"
    assert values[0] is None
    assert result.report.features["item.category"]["conflicting"] == 1
    assert dataset.feature_cardinality["item.category"] == 3


def test_item_table_features(tmp_path):
    log = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\nb,y\nb,z\n")
    items = write_text(tmp_path / "items.csv", "item_id,brand\nx,acme\ny,acme\nx,other\nq,none\n")
    result = run(tmp_path, log, item_features=("brand",), items_file=items, split="random")
    dataset = load_dataset(result.out)
    codes = dict(zip(dataset.item_ids, dataset.item_features["brand"]))
    assert codes["x"] == codes["y"] != 0
    assert codes["z"] == 0
    assert result.report.tables["items"] == {
        "rows": 4,
        "duplicate_ids_ignored": 1,
        "ids_without_interactions": 1,
        "items_missing_from_table": 1,
    }


def test_user_table_with_own_id_column(tmp_path):
    log = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\nb,y\n")
    users = write_text(tmp_path / "users.csv", "customer,country\na,DE\nb,FR\n")
    result = run(tmp_path, log, user_features=("country",), users_file=users, users_id_col="customer", split="random")
    dataset = load_dataset(result.out)
    assert sorted(dataset.user_features["country"].tolist()) == [1, 2]


def test_feature_missing_from_log(tmp_path):
    log = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n")
    with pytest.raises(InputError, match=r"--item-features names \['brand'\], which are not columns of the log"):
        run(tmp_path, log, item_features=("brand",))


def test_feature_missing_from_table(tmp_path):
    log = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n")
    items = write_text(tmp_path / "items.csv", "item_id,colour\nx,red\n")
    with pytest.raises(InputError, match=r"item table .* lacks columns \['brand'\]; columns found: item_id, colour"):
        run(tmp_path, log, item_features=("brand",), items_file=items)
