from __future__ import annotations

import polars as pl

from .conftest import interactions, run, write_text


def test_movielens_udata_tab_headerless(tmp_path):
    source = write_text(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881250950\n")
    result = run(tmp_path, source, preset="movielens")
    assert result.report.rows_read == 3
    assert result.manifest["columns"]["weight"] == "rating"
    table = interactions(result).sort("user_id", "item_id")
    assert table["weight"].to_list() == [3.0, 3.0, 5.0]
    assert result.report.time_format["unit"] == "s"


def test_movielens_ratings_dat(tmp_path):
    source = write_text(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    result = run(tmp_path, source, preset="movielens")
    assert result.manifest["n_users"] == 2
    assert result.manifest["n_items"] == 2


def test_movielens_ratings_csv_both_spellings(tmp_path):
    latest = write_text(tmp_path / "a" / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n")
    old = write_text(tmp_path / "b" / "ratings.csv", "user_id,movie_id,rating\n1,1,5\n6,1,4\n")
    first = run(tmp_path / "a", latest, preset="movielens")
    second = run(tmp_path / "b", old, preset="movielens")
    assert first.manifest["has_timestamps"] is True
    assert first.manifest["split"]["kind"] == "leave-last-out"
    assert second.manifest["has_timestamps"] is False
    assert second.manifest["split"]["kind"] == "random"
    assert second.manifest["split"]["available"] == ["random"]


def test_retailrocket_events(tmp_path):
    source = write_text(
        tmp_path / "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,257597,addtocart,355908,\n"
        "1433221999827,111016,view,318965,\n"
        "1433222276276,257597,transaction,248676,4000\n",
    )
    result = run(tmp_path, source, preset="retailrocket", split="random")
    assert result.report.time_format["unit"] == "ms"
    table = interactions(result).sort("user_id", "item_id")
    weights = dict(zip(zip(table["user_id"], table["item_id"]), table["weight"]))
    assert weights[("257597", "355908")] == 4.0  # view 1 + addtocart 3
    assert weights[("257597", "248676")] == 5.0
    assert result.report.event_mix == {"view": 2, "addtocart": 1, "transaction": 1}
    assert str(result.report.time_range["min"]).startswith("2015-06-02")


def test_taobao_preset_headerless(tmp_path):
    source = write_text(
        tmp_path / "UserBehavior.csv",
        "1,2268318,2520377,pv,1511544070\n1,2333346,2520771,buy,1511561733\n2,2268318,2520377,cart,1511572885\n",
    )
    result = run(tmp_path, source, preset="taobao", item_features=("category_id",), split="random")
    assert result.report.event_mix == {"pv": 1, "buy": 1, "cart": 1}
    items = pl.read_parquet(result.out / "items.parquet")
    assert items["category_id"].min() >= 1
