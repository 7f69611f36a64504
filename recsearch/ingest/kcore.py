"""Iterated k-core filtering of (user, item) pairs."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from recsearch.data import layout


@dataclass(frozen=True)
class KCoreResult:
    pairs: pl.DataFrame
    iterations: int
    pairs_removed: int
    events_removed: int
    users_removed: int
    items_removed: int


def kcore_filter(
    pairs: pl.DataFrame,
    min_user: int,
    min_item: int,
    keys: tuple[str, str] = (layout.USER_INDEX, layout.ITEM_INDEX),
) -> KCoreResult:
    """Drop users with fewer than ``min_user`` items and items with fewer than ``min_item`` users.

    Removing a user can push an item below its threshold and the other way round, so
    both filters repeat until a pass removes nothing.
    """
    user_col, item_col = keys
    n_users = pairs[user_col].n_unique()
    n_items = pairs[item_col].n_unique()
    kept = pairs
    iterations = 0
    while True:
        iterations += 1
        before = kept.height
        if min_user > 1:
            kept = kept.filter(pl.len().over(user_col) >= min_user)
        if min_item > 1:
            kept = kept.filter(pl.len().over(item_col) >= min_item)
        if kept.height == before or kept.height == 0:
            break
    return KCoreResult(
        pairs=kept,
        iterations=iterations,
        pairs_removed=pairs.height - kept.height,
        events_removed=int(pairs[layout.N_EVENTS].sum() - (kept[layout.N_EVENTS].sum() or 0)),
        users_removed=n_users - kept[user_col].n_unique(),
        items_removed=n_items - kept[item_col].n_unique(),
    )
