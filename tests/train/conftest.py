"""A small synthetic dataset shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsearch.data import Dataset, load_dataset
from recsearch.datasets import make_synthetic_dataset
from recsearch.datasets.synthetic import SyntheticConfig
from recsearch.evaluate import run_baselines

SMALL_LOG = SyntheticConfig(n_users=500, n_items=300, n_categories=15, n_brands=20, seed=3)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "data", SMALL_LOG)


@pytest.fixture(scope="session")
def dataset(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


@pytest.fixture(scope="session")
def popularity_validation_ndcg(dataset: Dataset) -> float:
    return run_baselines(dataset, split="validation", names=("most_popular",))["most_popular"].metrics["ndcg@10"]
