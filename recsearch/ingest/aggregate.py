"""Merge exact duplicate events and aggregate repeated (user, item) events into pairs."""

from __future__ import annotations

import polars as pl

from recsearch.data import layout
from recsearch.ingest.clean import EVENT, TIME, WEIGHT


def drop_duplicate_events(events: pl.DataFrame, key: list[str]) -> tuple[pl.DataFrame, int]:
    """Keep one of each group of events identical on ``key``; return the count removed.

    Row order is not kept: every later step aggregates or sorts.
    """
    unique = events.unique(subset=key, keep="any", maintain_order=False)
    return unique, events.height - unique.height


def aggregate_pairs(
    events: pl.DataFrame, has_time: bool, keys: tuple[str, str] = (layout.USER_INDEX, layout.ITEM_INDEX)
) -> pl.DataFrame:
    """Return one row per (user, item): summed weight, event count, first and last time.

    ``keys`` name the user and item columns of ``events``; the result keeps them and
    the interaction columns. Times are null when the log has none.
    """
    aggregations = [
        pl.col(WEIGHT).sum().cast(pl.Float32).alias(layout.WEIGHT),
        pl.len().cast(pl.Int32).alias(layout.N_EVENTS),
    ]
    if has_time:
        aggregations += [
            pl.col(TIME).min().alias(layout.FIRST_TIME),
            pl.col(TIME).max().alias(layout.LAST_TIME),
        ]
    else:
        null_time = pl.lit(None, dtype=pl.Datetime("us", "UTC"))
        aggregations += [null_time.alias(layout.FIRST_TIME), null_time.alias(layout.LAST_TIME)]
    return events.group_by(*keys).agg(aggregations).sort(*keys)


def event_mix(events: pl.DataFrame) -> dict[str, int]:
    """Return the number of rows of each event type, largest first."""
    if EVENT not in events.columns:
        return {}
    counts = events.group_by(EVENT).len().sort("len", descending=True)
    return {str(name): int(n) for name, n in counts.iter_rows()}
