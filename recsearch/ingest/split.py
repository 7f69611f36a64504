"""Leakage-free train / validation / test splits of (user, item) pairs.

- ``leave-last-out``: per user, the item met most recently (by its first event) is the
  test pair and the one before it the validation pair. Training keeps only events up
  to the validation time and validation only events up to the test time, so no held-out
  interaction is earlier than a training event of the same user.
- ``temporal``: one global cut by time quantile or date. Events at or after the test
  cut are test, and those between the validation cut and the test cut are validation.
  Held-out pairs whose user or item is absent from training, or that repeat a pair
  already seen earlier, are dropped and counted.
- ``random``: per user, a seeded random share of the pairs is held out.

Validation always comes from the training side of the test cut, never from test.
Held-out pairs whose item never occurs in training are dropped and counted in every
split, because no model trained on the training pairs can learn such an item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import polars as pl

from recsearch.data import layout
from recsearch.errors import InputError
from recsearch.ingest.aggregate import aggregate_pairs
from recsearch.ingest.clean import TIME

USER, ITEM = layout.USER_INDEX, layout.ITEM_INDEX
_ROLE = "_role"
TRAIN, VALIDATION, TEST = layout.SPLIT_NAMES


@dataclass
class SplitResult:
    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame
    settings: dict[str, Any]
    dropped_pairs: dict[str, int] = field(default_factory=dict)
    dropped_events: dict[str, int] = field(default_factory=dict)



def _aggregate_by_role(events: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Aggregate events tagged with a split role into one pair table per split."""
    pairs = aggregate_pairs(events, has_time=True, keys=(_ROLE, USER, ITEM))
    tables = pairs.partition_by(_ROLE, as_dict=True, include_key=False)
    empty = pairs.clear().drop(_ROLE)
    return {name: tables.get((name,), empty).select(layout.INTERACTION_COLUMNS) for name in layout.SPLIT_NAMES}


def _drop_unlearnable(result: SplitResult, strict_temporal: bool) -> None:
    """Drop held-out pairs whose item (or, if strict, user or pair) is absent from training."""
    seen_pairs = result.train.select(USER, ITEM)
    train_users = result.train.select(USER).unique()
    train_items = result.train.select(ITEM).unique()
    for name in (VALIDATION, TEST):
        frame: pl.DataFrame = getattr(result, name)
        if strict_temporal:
            kept = frame.join(train_users, on=USER, how="semi")
            result.dropped_pairs[f"{name}_cold_user"] = frame.height - kept.height
            frame = kept
        kept = frame.join(train_items, on=ITEM, how="semi")
        result.dropped_pairs[f"{name}_cold_item"] = frame.height - kept.height
        frame = kept
        if strict_temporal:
            kept = frame.join(seen_pairs, on=[USER, ITEM], how="anti")
            result.dropped_pairs[f"{name}_pair_seen_before"] = frame.height - kept.height
            frame = kept
            seen_pairs = pl.concat([seen_pairs, frame.select(USER, ITEM)])
        setattr(result, name, frame)


def leave_last_out(events: pl.DataFrame, pairs: pl.DataFrame) -> SplitResult:
    """Hold out each user's latest item as test and the one before it as validation.

    Users with one pair keep it in training; users with two give one test pair and no
    validation pair.
    """
    ranked = pairs.sort(USER, layout.FIRST_TIME, layout.LAST_TIME, ITEM).with_columns(
        (pl.len().over(USER) - 1 - pl.int_range(pl.len()).over(USER)).alias("_from_end"),
        pl.len().over(USER).alias("_n"),
    )
    ranked = ranked.with_columns(
        pl.when((pl.col("_from_end") == 0) & (pl.col("_n") >= 2))
        .then(pl.lit(TEST))
        .when((pl.col("_from_end") == 1) & (pl.col("_n") >= 3))
        .then(pl.lit(VALIDATION))
        .otherwise(pl.lit(TRAIN))
        .alias(_ROLE)
    )
    cuts = ranked.group_by(USER).agg(
        pl.col(layout.FIRST_TIME).filter(pl.col(_ROLE) == TEST).first().alias("_test_time"),
        pl.col(layout.FIRST_TIME).filter(pl.col(_ROLE) == VALIDATION).first().alias("_validation_time"),
    )
    tagged = events.join(ranked.select(USER, ITEM, _ROLE), on=[USER, ITEM], how="inner").join(
        cuts, on=USER, how="left"
    )
    train_limit = pl.coalesce(pl.col("_validation_time"), pl.col("_test_time"))
    keep = (
        pl.when(pl.col(_ROLE) == TRAIN)
        .then(train_limit.is_null() | (pl.col(TIME) <= train_limit))
        .when(pl.col(_ROLE) == VALIDATION)
        .then(pl.col("_test_time").is_null() | (pl.col(TIME) <= pl.col("_test_time")))
        .otherwise(True)
    )
    kept = tagged.filter(keep)

    result = SplitResult(
        **_aggregate_by_role(kept),
        settings={"kind": "leave-last-out", "order": "first event of each (user, item) pair"},
        dropped_events={"after_user_holdout_time": tagged.height - kept.height},
    )
    _drop_unlearnable(result, strict_temporal=False)
    return result


def _parse_cut(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r} is not an ISO-8601 date such as 2024-03-01 or 2024-03-01T12:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def temporal(
    events: pl.DataFrame,
    test_fraction: float,
    validation_fraction: float,
    test_cut: str | None = None,
    validation_cut: str | None = None,
) -> SplitResult:
    """Split by one global time cut (a quantile of event times, or a given date)."""
    times = events[TIME]
    if test_cut is not None:
        test_time = _parse_cut(test_cut, "--test-cut")
        validation_time = _parse_cut(validation_cut, "--validation-cut") if validation_cut else None
        if validation_time is not None and validation_time > test_time:
            raise InputError(f"--validation-cut {validation_cut} is later than --test-cut {test_cut}")
    else:
        test_time = times.quantile(1.0 - test_fraction, "higher") if test_fraction > 0 else None
        validation_time = (
            times.quantile(1.0 - test_fraction - validation_fraction, "higher") if validation_fraction > 0 else None
        )

    role = pl.lit(TRAIN)
    if validation_time is not None:
        role = pl.when(pl.col(TIME) >= validation_time).then(pl.lit(VALIDATION)).otherwise(role)
    if test_time is not None:
        role = pl.when(pl.col(TIME) >= test_time).then(pl.lit(TEST)).otherwise(role)
    tagged = events.with_columns(role.alias(_ROLE))

    parts = _aggregate_by_role(tagged)
    if parts[TRAIN].height == 0:
        raise InputError(
            f"the temporal split leaves no training data: every event is at or after the "
            f"validation/test cut ({validation_time or test_time}); choose a later --test-cut"
        )
    result = SplitResult(
        **parts,
        settings={
            "kind": "temporal",
            "test_cut": test_time.isoformat() if test_time is not None else None,
            "validation_cut": validation_time.isoformat() if validation_time is not None else None,
            "test_fraction": test_fraction if test_cut is None else None,
            "validation_fraction": validation_fraction if test_cut is None else None,
        },
    )
    _drop_unlearnable(result, strict_temporal=True)
    return result


def random_split(pairs: pl.DataFrame, test_fraction: float, validation_fraction: float, seed: int) -> SplitResult:
    """Hold out a seeded random share of each user's pairs.

    A user with n >= 3 pairs gives round(n * fraction) pairs, at least one, to each
    held-out part whose fraction is positive, and always keeps one pair for training.
    Users with fewer pairs stay in training.
    """
    ordered = pairs.sort(USER, ITEM)
    rng = np.random.default_rng(seed)
    ordered = ordered.with_columns(pl.Series("_key", rng.random(ordered.height)))
    ordered = ordered.sort(USER, "_key").with_columns(
        pl.int_range(pl.len()).over(USER).alias("_position"),
        pl.len().over(USER).alias("_n"),
    )

    def share(fraction: float) -> pl.Expr:
        if fraction <= 0:
            return pl.lit(0)
        wanted = (pl.col("_n") * fraction + 0.5).floor().cast(pl.Int64).clip(lower_bound=1)
        return pl.when(pl.col("_n") >= 3).then(wanted).otherwise(0)

    ordered = ordered.with_columns(share(test_fraction).alias("_n_test"))
    ordered = ordered.with_columns(
        pl.min_horizontal(share(validation_fraction), pl.col("_n") - 1 - pl.col("_n_test"))
        .clip(lower_bound=0)
        .alias("_n_validation")
    )
    # Keep at least one training pair even when rounding gives more test pairs.
    ordered = ordered.with_columns(pl.min_horizontal("_n_test", pl.col("_n") - 1).clip(lower_bound=0).alias("_n_test"))
    role = (
        pl.when(pl.col("_position") < pl.col("_n_test"))
        .then(pl.lit(TEST))
        .when(pl.col("_position") < pl.col("_n_test") + pl.col("_n_validation"))
        .then(pl.lit(VALIDATION))
        .otherwise(pl.lit(TRAIN))
    )
    tagged = ordered.with_columns(role.alias(_ROLE))
    parts = {
        name: tagged.filter(pl.col(_ROLE) == name).select(layout.INTERACTION_COLUMNS).sort(USER, ITEM)
        for name in layout.SPLIT_NAMES
    }
    result = SplitResult(
        **parts,
        settings={
            "kind": "random",
            "seed": seed,
            "test_fraction": test_fraction,
            "validation_fraction": validation_fraction,
            "min_pairs_for_holdout": 3,
        },
    )
    _drop_unlearnable(result, strict_temporal=False)
    return result
