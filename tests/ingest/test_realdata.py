"""Ingestion of the real logs in ../shared/datasets; each test skips when its folder is absent."""

from __future__ import annotations

import pytest

from recsearch.ingest import IngestConfig, ingest

from ..conftest import shared_dataset

pytestmark = pytest.mark.realdata


def test_movielens_100k_counts(tmp_path):
    source = shared_dataset("movielens-100k") / "u.data"
    result = ingest(IngestConfig(input=source, out=tmp_path / "ml100k", preset="movielens"))
    assert result.report.rows_read == 100_000
    assert result.manifest["n_interactions"] == 100_000
    assert result.manifest["n_users"] == 943
    assert result.manifest["n_items"] == 1_682
    assert result.report.dropped_rows == {}


def test_taobao_head_counts_through_column_mapping(tmp_path):
    source = shared_dataset("taobao-userbehavior-head84k") / "UserBehavior_head84k.csv.gz"
    result = ingest(
        IngestConfig(
            input=source,
            out=tmp_path / "taobao",
            columns=("user", "item", "category", "behaviour", "ts"),
            user_col="user",
            item_col="item",
            time_col="ts",
            event_col="behaviour",
            event_weights={"pv": 1, "fav": 2, "cart": 3, "buy": 5},
            item_features=("category",),
        )
    )
    report = result.report
    assert report.rows_read == 84_475
    assert report.dropped_rows == {}
    assert report.event_mix == {"pv": 75_872, "cart": 4_497, "fav": 2_356, "buy": 1_750}
    assert result.manifest["n_users"] == 815
    assert result.manifest["n_items"] == 55_368
    assert report.features["item.category"]["cardinality"] == 2_914 + 1  # plus the missing index
    assert report.events_in_interactions == 84_475
    assert report.time_range == {"min": "2017-09-11T08:16:39+00:00", "max": "2017-12-03T15:59:23+00:00"}


def test_movielens_1m_without_timestamps(tmp_path):
    source = shared_dataset("movielens-1m") / "ratings.csv"
    result = ingest(IngestConfig(input=source, out=tmp_path / "ml1m", preset="movielens"))
    assert result.manifest["n_interactions"] == 1_000_209
    assert result.manifest["n_users"] == 6_040
    assert result.manifest["n_items"] == 3_706
    assert result.manifest["has_timestamps"] is False
    assert result.manifest["split"]["kind"] == "random"
