"""Trained runs and exported model directories shared by the export and serving tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsearch.datasets import SyntheticConfig, make_synthetic_dataset
from recsearch.export import ExportConfig, IndexConfig, export_model
from recsearch.models import ItemTowerConfig, LossConfig, ModelConfig, UserTowerConfig
from recsearch.train import RunConfig, TrainConfig, train_model

TINY_LOG = SyntheticConfig(n_users=300, n_items=240, n_categories=8, n_brands=10, seed=5)
FAST = TrainConfig(batch_size=256, learning_rate=0.01, max_epochs=2, patience=2)
# Reads recent items through a mean encoder and keeps a user-id embedding, so both the
# stored user vectors and the ONNX tower are exercised.
HISTORY_MODEL = ModelConfig(
    embedding_dim=16,
    item_tower=ItemTowerConfig(id_dim=16),
    user_tower=UserTowerConfig(id_dim=16, history="mean", history_length=5, user_id_dropout=0.2),
    loss=LossConfig(kind="sampled_softmax"),
)
MF_MODEL = ModelConfig.matrix_factorization(16)


def clustered_vectors(n: int, dim: int, rng: np.random.Generator, n_clusters: int = 32) -> np.ndarray:
    """Return (n, dim) float32 vectors around random cluster centres, with norms that vary as learned embeddings' do.

    Each call draws new centres, so user vectors drawn apart from item vectors point elsewhere,
    which makes inner-product search harder than queries taken from the items themselves.
    """
    centres = rng.normal(size=(n_clusters, dim))
    assignment = rng.integers(0, n_clusters, n)
    return (centres[assignment] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("serving-data") / "data", TINY_LOG)


@pytest.fixture(scope="session")
def history_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("history-run")
    train_model(data_dir, RunConfig(model=HISTORY_MODEL, train=FAST), run_dir, evaluate_test=True)
    return run_dir


@pytest.fixture(scope="session")
def mf_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("mf-run")
    train_model(data_dir, RunConfig(model=MF_MODEL, train=FAST), run_dir, evaluate_test=False)
    return run_dir


@pytest.fixture(scope="session")
def history_model_dir(history_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "history"
    export_model(history_run, out)
    return out


@pytest.fixture(scope="session")
def mf_model_dir(mf_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MF run with an HNSW index, which --index auto would choose only for far larger catalogues."""
    out = tmp_path_factory.mktemp("models") / "mf-hnsw"
    export_model(mf_run, out, ExportConfig(index=IndexConfig(kind="hnsw")))
    return out
