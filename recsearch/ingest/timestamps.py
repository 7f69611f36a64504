"""Parse a text column of timestamps into UTC datetimes.

Two forms are accepted: numbers since the Unix epoch (seconds, milliseconds,
microseconds or nanoseconds, detected from the magnitude unless the unit is given) and
ISO-8601 strings with or without a zone offset. Strings without an offset are taken
in the configured zone (UTC by default).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import polars as pl

from recsearch.errors import InputError

logger = logging.getLogger(__name__)

MIN_TIME = pl.datetime(1970, 1, 1, time_zone="UTC")
MAX_TIME = pl.datetime(2100, 1, 1, time_zone="UTC")
INSPECTED_ROWS = 200_000
_MICROSECONDS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}
# Thresholds on the median magnitude: 1e11 seconds is the year 5138 and 1e11
# milliseconds is 1973, so the ranges cannot overlap for dates in 1973..5138.
_UNIT_LIMITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)


@dataclass(frozen=True)
class TimeFormat:
    """Encoding of a timestamp column."""

    kind: str  # "epoch" or "iso"
    unit: str | None  # epoch unit; None for ISO strings
    detected: bool  # whether the unit came from the data rather than from an option


def unit_from_magnitude(median_abs: float) -> str:
    for limit, unit in _UNIT_LIMITS:
        if median_abs < limit:
            return unit
    return "ns"


def inspect_time_column(frame: pl.LazyFrame, column: str, forced_unit: str | None) -> TimeFormat:
    """Decide between epoch numbers and ISO strings from the first rows of the column.

    Reading only a sample keeps this from scanning a large log twice. Rows that do
    not fit the form chosen here become unparseable or out-of-range rows later.
    """
    numeric = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    stats = frame.head(INSPECTED_ROWS).select(
        pl.len().alias("rows"),
        pl.col(column).is_not_null().sum().alias("present"),
        numeric.is_not_null().sum().alias("numeric"),
        numeric.abs().median().alias("median"),
    ).collect()
    n_rows, present, n_numeric, median = stats.row(0)
    if n_rows == 0:
        raise InputError("the log contains no data rows, only a header or nothing; check the input file")
    if present == 0:
        raise InputError(
            f"the time column {column!r} is empty in the first {INSPECTED_ROWS:,} rows; "
            "drop --time-col or pass --no-time"
        )
    if n_numeric * 2 >= present:
        if forced_unit is not None:
            return TimeFormat("epoch", forced_unit, detected=False)
        unit = unit_from_magnitude(float(median or 0.0))
        logger.info("time column %r: epoch %s (median value %.0f)", column, unit, median or 0.0)
        return TimeFormat("epoch", unit, detected=True)
    if forced_unit is not None:
        raise InputError(
            f"--time-unit {forced_unit} was given but the time column {column!r} contains date strings, "
            "not numbers; drop --time-unit"
        )
    return TimeFormat("iso", None, detected=True)


def parse_time(column: str, time_format: TimeFormat, timezone: str) -> pl.Expr:
    """Return an expression giving Datetime(us, UTC), null where the text does not parse."""
    text = pl.col(column).str.strip_chars()
    if time_format.kind == "epoch":
        assert time_format.unit is not None
        micros = (text.cast(pl.Float64, strict=False) * _MICROSECONDS[time_format.unit]).round(0)
        # Clipping keeps absurd magnitudes representable, so the range check, not the
        # parser, reports them (a sign of mixed units).
        micros = pl.when(micros.is_finite()).then(micros.clip(-9e18, 9e18)).otherwise(None)
        return pl.from_epoch(micros.cast(pl.Int64), time_unit="us").dt.replace_time_zone("UTC")

    # One ISO spelling per attempt; the first that parses wins. A space between the
    # date and the time is accepted, and so is a trailing "UTC".
    normalised = text.str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T").str.replace(r"\s*UTC$", "Z")
    attempts = []
    for fmt in _ISO_FORMATS:
        has_zone = fmt.endswith("z")
        parsed = normalised.str.to_datetime(
            fmt, strict=False, time_unit="us", time_zone="UTC" if has_zone else None
        )
        if not has_zone:
            parsed = parsed.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
            parsed = parsed.dt.convert_time_zone("UTC")
        attempts.append(parsed)
    return pl.coalesce(attempts)


def check_timezone(timezone: str) -> None:
    try:
        pl.Series([0]).cast(pl.Datetime("us")).dt.replace_time_zone(timezone)
    except Exception as exc:  # polars raises ComputeError for unknown zones
        raise InputError(
            f"unknown --timezone {timezone!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from exc
