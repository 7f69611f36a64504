from __future__ import annotations

from pathlib import Path

import pytest

from recsearch.datasets import SyntheticConfig, make_synthetic_dataset

# A small space keeps each trial to a few seconds on two CPU cores.
FAST_SPACE = """
[params."model.embedding_dim"]
choices = [16, 32]

[params."train.batch_size"]
choices = [256, 512]

[params."model.user_tower.history"]
choices = ["none", "mean"]

[fixed]
"train.max_epochs" = 3
"train.patience" = 3
"""


@pytest.fixture(scope="session")
def search_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("search-data")
    config = SyntheticConfig(n_users=300, n_items=200, n_categories=10, n_brands=12, seed=1)
    return make_synthetic_dataset(root / "data", config)


@pytest.fixture(scope="session")
def fast_space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.toml"
    path.write_text(FAST_SPACE, encoding="utf-8")
    return path
