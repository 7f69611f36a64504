"""File names and column names of a dataset directory (DATA_DIR).

A DATA_DIR holds:

- ``dataset.json``: the manifest (format version, counts, split settings, features,
  sources with their sha256, the ingestion configuration);
- ``interactions.parquet``: every kept (user, item) pair after filtering, before the split;
- ``train.parquet``, ``validation.parquet``, ``test.parquet``: the split of those pairs;
- ``users.parquet`` and ``items.parquet``: the id vocabularies, one row per index, with
  one integer column per categorical feature;
- ``features/{entity}.{name}.parquet``: the vocabulary of one categorical feature;
- ``ingest_report.json``: what was read, dropped, merged and why;
- ``quarantine.parquet``: rejected rows, only with ``--on-bad-rows quarantine``.

Interaction tables have the columns of ``INTERACTION_COLUMNS``. Times are UTC
datetimes in microseconds, null in every row when the log had no timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATASET_FORMAT = "recsearch.dataset"
DATASET_FORMAT_VERSION = 1

USER_INDEX = "user_idx"
ITEM_INDEX = "item_idx"
USER_ID = "user_id"
ITEM_ID = "item_id"
WEIGHT = "weight"
N_EVENTS = "n_events"
FIRST_TIME = "first_time"
LAST_TIME = "last_time"

INTERACTION_COLUMNS = (USER_INDEX, ITEM_INDEX, WEIGHT, N_EVENTS, FIRST_TIME, LAST_TIME)
SPLIT_NAMES = ("train", "validation", "test")

# Index 0 of every feature vocabulary is the missing value, so a zero row
# in an embedding table can stand for "unknown".
MISSING_FEATURE_INDEX = 0
FEATURE_VALUE = "value"
FEATURE_INDEX = "index"


@dataclass(frozen=True)
class DatasetPaths:
    """Paths inside one dataset directory."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "dataset.json"

    @property
    def interactions(self) -> Path:
        return self.root / "interactions.parquet"

    def split(self, name: str) -> Path:
        if name not in SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return self.root / f"{name}.parquet"

    @property
    def users(self) -> Path:
        return self.root / "users.parquet"

    @property
    def items(self) -> Path:
        return self.root / "items.parquet"

    def feature_vocabulary(self, entity: str, name: str) -> Path:
        return self.root / "features" / f"{entity}.{name}.parquet"

    @property
    def report(self) -> Path:
        return self.root / "ingest_report.json"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine.parquet"
