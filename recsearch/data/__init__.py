"""The DATA_DIR contract: what ingestion writes and every later stage reads."""

from recsearch.data.layout import (
    DATASET_FORMAT,
    DATASET_FORMAT_VERSION,
    INTERACTION_COLUMNS,
    MISSING_FEATURE_INDEX,
    SPLIT_NAMES,
    DatasetPaths,
)
from recsearch.data.load import Dataset, Interactions, load_dataset

__all__ = [
    "DATASET_FORMAT",
    "DATASET_FORMAT_VERSION",
    "INTERACTION_COLUMNS",
    "MISSING_FEATURE_INDEX",
    "SPLIT_NAMES",
    "Dataset",
    "DatasetPaths",
    "Interactions",
    "load_dataset",
]
