"""Map the log's columns to canonical ones, parse values and flag bad rows with a reason.

The result is one lazy frame with the canonical columns ``user_id``, ``item_id``,
``time``, ``event``, ``weight``, ``session`` and the feature columns, plus
``_reason``: null for a good row, otherwise why the row cannot be used. Raw text of
the parsed columns is kept beside them so that errors and the quarantine file show
the value as written.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from recsearch.ingest.sources import EMPTY_COLUMN, FILE_COLUMN, ROW_COLUMN

__all__ = ["FILE_COLUMN", "ROW_COLUMN", "ColumnMap", "CleanOptions", "canonical_frame"]
from recsearch.ingest.timestamps import MAX_TIME, MIN_TIME, TimeFormat, parse_time

USER = "user_id"
ITEM = "item_id"
TIME = "time"
EVENT = "event"
WEIGHT = "weight"
SESSION = "session"
REASON = "_reason"
RAW_PREFIX = "_raw_"
# Weights are stored as float32, so a larger value would become infinite there.
MAX_WEIGHT = 3.4028234663852886e38

# Row-level reasons, in the order they are checked: a row gets the first that applies.
EMPTY_ROW = "empty_row"  # every field empty, as on a blank line: always dropped and counted, never an error
NULL_USER = "null_user_id"
NULL_ITEM = "null_item_id"
MISSING_TIME = "missing_timestamp"
BAD_TIME = "unparseable_timestamp"
TIME_RANGE = "timestamp_out_of_range"
BAD_WEIGHT = "invalid_weight"
UNKNOWN_EVENT = "unknown_event"
NON_POSITIVE = "non_positive_weight"
BELOW_RATING = "below_min_rating"

# Reasons that make a row bad input (subject to --on-bad-rows), as opposed to rows
# that a filtering option asked to drop.
BAD_ROW_REASONS = (NULL_USER, NULL_ITEM, MISSING_TIME, BAD_TIME, TIME_RANGE, BAD_WEIGHT)
# Canonical column of each reason, named in error messages.
REASON_COLUMN = {
    NULL_USER: USER,
    NULL_ITEM: ITEM,
    MISSING_TIME: TIME,
    BAD_TIME: TIME,
    TIME_RANGE: TIME,
    BAD_WEIGHT: WEIGHT,
    UNKNOWN_EVENT: EVENT,
    NON_POSITIVE: WEIGHT,
    BELOW_RATING: WEIGHT,
}


@dataclass(frozen=True)
class ColumnMap:
    """Input column of each role; None where the log has no such column."""

    user: str
    item: str
    time: str | None = None
    event: str | None = None
    weight: str | None = None
    session: str | None = None
    item_features: tuple[str, ...] = ()
    user_features: tuple[str, ...] = ()

    def source_of(self, canonical: str) -> str:
        names = {USER: self.user, ITEM: self.item, TIME: self.time, EVENT: self.event, WEIGHT: self.weight}
        return names.get(canonical) or canonical


@dataclass(frozen=True)
class CleanOptions:
    time_format: TimeFormat | None
    timezone: str = "UTC"
    event_weights: dict[str, float] | None = None
    drop_unknown_events: bool = False
    min_rating: float | None = None


def feature_column(entity: str, name: str) -> str:
    return f"{entity}:{name}"


def _null_if_blank(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.str.strip_chars() == "").then(None).otherwise(expr)


def canonical_frame(frame: pl.LazyFrame, columns: ColumnMap, options: CleanOptions) -> pl.LazyFrame:
    """Select, rename and parse the mapped columns and add the ``_reason`` column."""
    exprs = [
        pl.col(ROW_COLUMN),
        pl.col(FILE_COLUMN),
        pl.col(EMPTY_COLUMN),
        # Categorical ids: every later group-by and join hashes a 4-byte code, not the text.
        _null_if_blank(pl.col(columns.user)).cast(pl.Categorical).alias(USER),
        _null_if_blank(pl.col(columns.item)).cast(pl.Categorical).alias(ITEM),
    ]
    reasons = [
        (pl.col(EMPTY_COLUMN), EMPTY_ROW),
        (pl.col(USER).is_null(), NULL_USER),
        (pl.col(ITEM).is_null(), NULL_ITEM),
    ]

    if columns.time is not None:
        assert options.time_format is not None
        raw = _null_if_blank(pl.col(columns.time))
        exprs += [raw.alias(RAW_PREFIX + TIME), parse_time(columns.time, options.time_format, options.timezone).alias(TIME)]
        reasons += [
            (pl.col(RAW_PREFIX + TIME).is_null(), MISSING_TIME),
            (pl.col(TIME).is_null(), BAD_TIME),
            ((pl.col(TIME) < MIN_TIME) | (pl.col(TIME) >= MAX_TIME), TIME_RANGE),
        ]

    if columns.weight is not None:
        raw = pl.col(columns.weight)
        exprs += [
            raw.alias(RAW_PREFIX + WEIGHT),
            raw.str.strip_chars().cast(pl.Float64, strict=False).alias("_value"),
        ]
        invalid = pl.col("_value").is_null() | ~pl.col("_value").is_finite() | (pl.col("_value").abs() > MAX_WEIGHT)
        reasons.append((invalid, BAD_WEIGHT))

    event_weight = pl.lit(1.0)
    if columns.event is not None:
        exprs.append(pl.col(columns.event).str.strip_chars().str.to_lowercase().alias(EVENT))
        if options.event_weights is not None:
            known = list(options.event_weights)
            reasons.append((pl.col(EVENT).is_null() | ~pl.col(EVENT).is_in(known), UNKNOWN_EVENT))
            event_weight = pl.col(EVENT).replace_strict(options.event_weights, default=None, return_dtype=pl.Float64)

    if columns.weight is not None:
        reasons.append((pl.col("_value") <= 0, NON_POSITIVE))
        if options.min_rating is not None:
            reasons.append((pl.col("_value") < options.min_rating, BELOW_RATING))
    elif options.min_rating is not None:
        raise AssertionError("min_rating needs a weight column; checked by the caller")

    if columns.session is not None:
        exprs.append(pl.col(columns.session).alias(SESSION))
    for entity, names in (("item", columns.item_features), ("user", columns.user_features)):
        for name in names:
            exprs.append(_null_if_blank(pl.col(name)).alias(feature_column(entity, name)))

    reason = pl.lit(None, dtype=pl.String)
    for condition, label in reversed(reasons):
        reason = pl.when(condition.fill_null(True)).then(pl.lit(label)).otherwise(reason)

    weight = event_weight
    if columns.weight is not None:
        weight = weight * pl.col("_value")
    frame = frame.select(exprs).with_columns(reason.alias(REASON))
    frame = frame.with_columns(pl.when(pl.col(REASON).is_null()).then(weight).otherwise(None).alias(WEIGHT))
    if "_value" in frame.collect_schema():
        frame = frame.drop("_value")
    return frame.drop(EMPTY_COLUMN)
