"""Data the project makes itself: the synthetic click log behind the default run and the tests."""

from recsearch.datasets.fixtures import SYNTHETIC_EVENT_WEIGHTS, SYNTHETIC_ITEM_FEATURES, make_synthetic_dataset
from recsearch.datasets.synthetic import SyntheticConfig, generate_clicklog, write_clicklog

__all__ = [
    "SYNTHETIC_EVENT_WEIGHTS",
    "SYNTHETIC_ITEM_FEATURES",
    "SyntheticConfig",
    "generate_clicklog",
    "make_synthetic_dataset",
    "write_clicklog",
]
