import json

import numpy as np
import pytest
import torch

from recsearch.models import FeatureConfig, ItemTowerConfig, LossConfig, MLPConfig, ModelConfig, UserTowerConfig
from recsearch.train import MONITOR, RunConfig, TrainConfig, TwoTowerScorer, UserHistory, load_trained_model, train_model
from recsearch.evaluate import evaluate_split, evaluation_split

FAST = TrainConfig(batch_size=256, learning_rate=0.01, max_epochs=4, patience=4)

FAMILIES = {
    "mf_bpr": ModelConfig.matrix_factorization(32),
    "mf_bpr_4_negatives": ModelConfig.matrix_factorization(32, loss=LossConfig(n_negatives=4)),
    "mf_sampled_softmax": ModelConfig.matrix_factorization(32, loss=LossConfig(kind="sampled_softmax")),
    "mf_full_softmax": ModelConfig.matrix_factorization(32, loss=LossConfig(kind="full_softmax")),
    "features_mlp": ModelConfig(
        embedding_dim=32,
        item_tower=ItemTowerConfig(
            id_dim=32,
            features=(FeatureConfig(name="category", dim=8), FeatureConfig(name="brand", dim=4)),
            mlp=MLPConfig(depth=2, width=64),
        ),
        user_tower=UserTowerConfig(id_dim=32, mlp=MLPConfig(depth=2, width=64)),
        loss=LossConfig(kind="sampled_softmax"),
    ),
    "history_mean_normalized": ModelConfig(
        embedding_dim=32,
        item_tower=ItemTowerConfig(id_dim=32),
        user_tower=UserTowerConfig(use_user_id=False, history="mean", history_length=10),
        loss=LossConfig(kind="sampled_softmax"),
        l2_normalize=True,
        temperature=0.1,
    ),
    "history_recency": ModelConfig(
        embedding_dim=32,
        item_tower=ItemTowerConfig(id_dim=32),
        user_tower=UserTowerConfig(id_dim=16, history="recency", history_length=10, recency_decay=0.7, user_id_dropout=0.2),
        loss=LossConfig(kind="full_softmax"),
    ),
    "history_gru": ModelConfig(
        embedding_dim=32,
        item_tower=ItemTowerConfig(id_dim=32),
        user_tower=UserTowerConfig(use_user_id=False, history="gru", history_length=10),
        loss=LossConfig(kind="sampled_softmax"),
    ),
    "history_attention": ModelConfig(
        embedding_dim=32,
        item_tower=ItemTowerConfig(id_dim=32),
        user_tower=UserTowerConfig(use_user_id=False, history="attention", history_length=10),
        loss=LossConfig(kind="sampled_softmax"),
    ),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_learns_and_beats_popularity(name, dataset, tmp_path, popularity_validation_ndcg):
    result = train_model(dataset, RunConfig(model=FAMILIES[name], train=FAST), tmp_path, evaluate_test=False)

    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert result.best_score is not None
    assert result.best_score > 2 * popularity_validation_ndcg


def test_run_directory_reloads_without_lightning(dataset, tmp_path):
    config = RunConfig(model=FAMILIES["history_gru"], train=FAST.model_copy(update={"max_epochs": 2}))
    result = train_model(dataset, config, tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "config.json", "metrics.json", "model.pt"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["monitor"] == MONITOR
    assert set(metrics["test"]) >= {"ndcg@10", "recall@20", "coverage@10"}

    network = load_trained_model(tmp_path, dataset)
    history, _ = UserHistory.from_tables(dataset.n_users, dataset.train)
    split = evaluation_split(dataset, "validation")
    reloaded = evaluate_split(TwoTowerScorer(network, history), split).summary()
    assert reloaded["ndcg@10"] == pytest.approx(result.validation_metrics["ndcg@10"], abs=1e-6)
    assert reloaded["ndcg@10"] == pytest.approx(result.best_score, abs=1e-6)


def test_same_seed_same_result(dataset, tmp_path):
    config = RunConfig(model=FAMILIES["mf_sampled_softmax"], train=FAST.model_copy(update={"max_epochs": 1}))
    first = train_model(dataset, config, tmp_path / "a", evaluate_test=False)
    second = train_model(dataset, config, tmp_path / "b", evaluate_test=False)
    assert first.best_score == second.best_score


def test_history_excludes_the_target_pair(dataset):
    history, order = UserHistory.from_tables(dataset.n_users, dataset.train)
    user = torch.as_tensor(dataset.train.user[order], dtype=torch.int64)
    positions = torch.arange(user.shape[0])
    window, mask = history.window(positions, user, 3)
    # The first pair of every user has an empty history; no window reaches the pair itself.
    first = positions == history.indptr[user]
    assert not mask[first].any()
    assert torch.equal(window[~first][:, -1], history.items[positions[~first] - 1])
    if dataset.train.last_time is not None:
        times = dataset.train.last_time[order]
        same_user = np.diff(user.numpy()) == 0
        assert (np.diff(times)[same_user] >= 0).all()
