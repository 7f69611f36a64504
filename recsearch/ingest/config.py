"""The ingestion configuration: one validated, JSON-serialisable object."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from recsearch.errors import InputError

SplitKind = Literal["leave-last-out", "temporal", "random"]
SPLIT_KINDS = ("leave-last-out", "temporal", "random")
BAD_ROW_POLICIES = ("error", "drop", "quarantine")
TIME_UNITS = ("s", "ms", "us", "ns")
PRESETS = ("generic", "movielens", "retailrocket", "taobao")


def parse_event_weights(text: str) -> dict[str, float]:
    """Parse ``view=1,addtocart=3`` into a mapping; event names are matched case-insensitively."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise InputError(f"invalid event weight {part!r}: write NAME=WEIGHT, e.g. view=1,purchase=5")
        try:
            weight = float(value)
        except ValueError:
            raise InputError(f"invalid event weight {part!r}: {value!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise InputError(f"invalid event weight {part!r}: the weight must be a finite number >= 0")
        weights[name.strip().lower()] = weight
    if not weights:
        raise InputError(f"no event weights in {text!r}: write NAME=WEIGHT, e.g. view=1,purchase=5")
    return weights


@dataclass(frozen=True)
class IngestConfig:
    """Everything `recsearch ingest` needs to turn a log into a dataset directory.

    Column names left as None are taken from the preset, or found among common
    spellings (``user_id``, ``userId``, ``visitorid``...) in the generic preset.
    """

    input: Path
    out: Path
    format: str | None = None  # csv, tsv, parquet or ndjson; None: from the file name
    separator: str | None = None  # None: sniffed from the first lines
    quote_char: str | None = '"'  # None: no quoting
    columns: tuple[str, ...] | None = None  # names for header-less text files
    preset: str = "generic"

    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    event_col: str | None = None
    weight_col: str | None = None  # rating, quantity or count; multiplies the event weight
    session_col: str | None = None
    no_time: bool = False  # ignore any timestamp column, as if the log had none

    item_features: tuple[str, ...] = ()
    user_features: tuple[str, ...] = ()
    items_file: Path | None = None
    users_file: Path | None = None
    items_id_col: str | None = None  # default: the log's item column name
    users_id_col: str | None = None

    time_unit: str | None = None  # epoch unit; None: detected from the magnitude
    timezone: str = "UTC"  # zone of timestamps written without an offset
    event_weights: dict[str, float] | None = None  # None: every event type weighs 1
    unknown_events: str = "error"  # or "drop": events missing from event_weights
    min_rating: float | None = None  # keep rows whose weight column is at least this
    on_bad_rows: str = "error"  # or "drop" or "quarantine"
    dedupe: bool = True  # merge byte-identical events (same user, item, time, event, weight)

    min_user_interactions: int = 1  # k-core: distinct items per user
    min_item_interactions: int = 1  # k-core: distinct users per item

    split: str | None = None  # None: leave-last-out with timestamps, random without
    test_fraction: float = 0.1  # random and temporal splits
    validation_fraction: float = 0.1
    test_cut: str | None = None  # temporal: ISO date of the test cut, instead of a quantile
    validation_cut: str | None = None
    seed: int = 0
    overwrite: bool = False

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes stored in the manifest

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", Path(self.input))
        object.__setattr__(self, "out", Path(self.out))
        for name in ("items_file", "users_file"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        for name in ("columns", "item_features", "user_features"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        self._validate()

    def _validate(self) -> None:
        _check_choice("--preset", self.preset, PRESETS)
        _check_choice("--on-bad-rows", self.on_bad_rows, BAD_ROW_POLICIES)
        _check_choice("--unknown-events", self.unknown_events, ("error", "drop"))
        if self.split is not None:
            _check_choice("--split", self.split, SPLIT_KINDS)
        if self.time_unit is not None:
            _check_choice("--time-unit", self.time_unit, TIME_UNITS)
        for name in ("min_user_interactions", "min_item_interactions"):
            value = getattr(self, name)
            if value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in ("test_fraction", "validation_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InputError(f"--{name.replace('_', '-')} must be within [0, 1), got {value}")
        if self.test_fraction + self.validation_fraction >= 1.0:
            raise InputError(
                f"--test-fraction ({self.test_fraction}) plus --validation-fraction "
                f"({self.validation_fraction}) must stay below 1 to leave training data"
            )
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            raise InputError(f"--columns has repeated names: {','.join(self.columns)}")
        if self.separator is not None and self.separator == "":
            raise InputError("--separator must not be empty")
        overlap = set(self.item_features) & set(self.user_features)
        if overlap:
            raise InputError(f"columns {sorted(overlap)} are named as both item and user features")
        if self.min_rating is not None and not math.isfinite(self.min_rating):
            raise InputError(f"--min-rating must be a finite number, got {self.min_rating}")
        if (self.test_cut is None) != (self.validation_cut is None) and self.validation_cut is not None:
            raise InputError("--validation-cut needs --test-cut as well")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
            elif isinstance(value, tuple):
                data[key] = list(value)
        return data


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"invalid {option} {value!r}; expected one of {', '.join(choices)}")
