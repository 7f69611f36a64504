"""Dataset facts a model needs, as arrays: sizes, item features, frequencies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CatalogSchema:
    """Sizes and per-index arrays that fix the shapes of a model's tables.

    Feature arrays hold one vocabulary index per item, 0 meaning missing. The
    frequencies count training interactions and decide the mixed-dimension tiers.
    """

    n_users: int
    n_items: int
    item_frequency: np.ndarray  # (n_items,) training interactions per item
    user_frequency: np.ndarray  # (n_users,) training interactions per user
    item_features: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (n_items,) int
    feature_cardinality: Mapping[str, int] = field(default_factory=dict)  # name -> vocabulary size, incl. 0

    def __post_init__(self) -> None:
        assert self.item_frequency.shape == (self.n_items,), "item_frequency must have n_items entries"
        assert self.user_frequency.shape == (self.n_users,), "user_frequency must have n_users entries"
        for name, values in self.item_features.items():
            assert values.shape == (self.n_items,), f"item feature {name} must have n_items entries"
            assert name in self.feature_cardinality, f"item feature {name} has no cardinality"
