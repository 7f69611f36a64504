from __future__ import annotations

import polars as pl
import pytest

from recsearch.datasets import SyntheticConfig, generate_clicklog
from recsearch.errors import InputError


def test_same_seed_same_log():
    config = SyntheticConfig(n_users=80, n_items=60, n_categories=6, seed=11)
    assert generate_clicklog(config).equals(generate_clicklog(config))
    other = SyntheticConfig(n_users=80, n_items=60, n_categories=6, seed=12)
    assert not generate_clicklog(config).equals(generate_clicklog(other))


def test_funnel_and_columns():
    log = generate_clicklog(SyntheticConfig(n_users=300, n_items=200, seed=1))
    assert log.columns == ["user_id", "item_id", "category", "brand", "event", "timestamp", "session_id"]
    counts = dict(log.group_by("event").len().iter_rows())
    assert counts["view"] > counts["addtocart"] > counts["purchase"] > 0
    # Every purchase follows an add-to-cart of the same item by the same user.
    carts = log.filter(pl.col("event") == "addtocart").select("user_id", "item_id").unique()
    purchases = log.filter(pl.col("event") == "purchase").select("user_id", "item_id").unique()
    assert purchases.join(carts, on=["user_id", "item_id"], how="anti").height == 0
    assert log["user_id"].n_unique() == 300


def test_popularity_is_skewed():
    log = generate_clicklog(SyntheticConfig(n_users=1_000, n_items=500, seed=2))
    counts = log.group_by("item_id").len()["len"].sort(descending=True)
    top_share = counts.head(len(counts) // 10).sum() / counts.sum()
    assert top_share > 0.3


def test_users_concentrate_on_few_categories():
    # The learnable signal: a user's views fall in a few categories, far fewer than chance.
    config = SyntheticConfig(n_users=400, n_items=600, n_categories=30, seed=3)
    log = generate_clicklog(config)
    top = log.group_by("user_id", "category").len().group_by("user_id").agg(
        (pl.col("len").max() / pl.col("len").sum()).alias("top_share")
    )
    assert top["top_share"].mean() > 0.4  # uniform tastes would give about 1/30 plus noise


def test_for_events_sizes_the_log():
    log = generate_clicklog(SyntheticConfig.for_events(50_000, seed=0))
    assert 35_000 < log.height < 70_000


@pytest.mark.parametrize(
    ("options", "message"),
    [({"n_users": 0}, "n_users must be at least 1"), ({"cart_rate": 1.5}, "cart_rate must be within")],
)
def test_invalid_config(options, message):
    with pytest.raises(InputError, match=message):
        SyntheticConfig(**options)
