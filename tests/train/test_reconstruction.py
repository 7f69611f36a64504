"""The reconstruction loss: whole users as examples, their items pooled by sum or mean."""

import json
import re

import numpy as np
import pytest
import torch

from recsearch.errors import InputError
from recsearch.export.pipeline import compute_user_vectors, last_items, user_item_history
from recsearch.models import ItemTowerConfig, LossConfig, MLPConfig, ModelConfig, UserTowerConfig
from recsearch.models.config import EmbeddingConfig
from recsearch.models.losses import reconstruction_loss
from recsearch.models.two_tower import TwoTowerModel
from recsearch.train import RunConfig, TrainConfig, UserHistory, train_model
from recsearch.export.onnx import export_user_tower
from recsearch.train.data import TrainingUsers, TwoTowerDataModule, catalog_schema

FAST = TrainConfig(users_per_batch=64, learning_rate=0.01, max_epochs=4, patience=4)


def linear_model(history: str = "sum", **loss: object) -> ModelConfig:
    return ModelConfig(
        embedding_dim=32,
        item_tower=ItemTowerConfig(id_dim=32),
        user_tower=UserTowerConfig(use_user_id=False, history=history, history_length=400, id_dim=32),
        embeddings=EmbeddingConfig(init_std=0.01),
        loss=LossConfig(kind="reconstruction", **loss),
    )


# A user id beside the pooled items and MLPs on both towers: the loss is not tied to the linear case.
HYBRID = ModelConfig(
    embedding_dim=32,
    item_tower=ItemTowerConfig(id_dim=32, mlp=MLPConfig(depth=1)),
    user_tower=UserTowerConfig(id_dim=16, history="sum", history_length=400, mlp=MLPConfig(depth=2, width=64)),
    loss=LossConfig(kind="reconstruction", l2=1.0),
)


# Mean pooling gives inputs n times smaller than the sum over n items, so it needs a far smaller l2.
@pytest.mark.parametrize(
    "model", [linear_model("sum"), linear_model("mean", l2=1.0), HYBRID], ids=["sum", "mean", "hybrid"]
)
def test_reconstruction_learns_and_beats_popularity(model, dataset, tmp_path, popularity_validation_ndcg):
    result = train_model(dataset, RunConfig(model=model, train=FAST), tmp_path, evaluate_test=False)

    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert result.best_score is not None
    assert result.best_score > 2 * popularity_validation_ndcg


@pytest.mark.parametrize("model", [linear_model("sum"), linear_model("mean"), HYBRID], ids=["sum", "mean", "hybrid"])
def test_item_matrix_gives_the_padded_history_vectors(model, dataset):
    torch.manual_seed(0)
    network = TwoTowerModel(model, catalog_schema(dataset)).eval()
    history = UserHistory.from_tables(dataset.n_users, dataset.train)[0]
    users = torch.arange(50)
    items, mask = history.last_items(users, 400)
    matrix = torch.zeros(50, dataset.n_items).scatter_add_(1, items, mask.float())
    with torch.no_grad():
        padded = network.user_vectors(users, items, mask)
        pooled = network.user_vectors(users, history_matrix=matrix)
    torch.testing.assert_close(pooled, padded, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("history_length", [3, 400])
def test_embed_users_agrees_with_user_vectors(history_length, dataset):
    # 3 slots of 32 dimensions gather fewer floats than a 300-item row, 400 slots more,
    # so the two lengths take the two paths of embed_users.
    config = linear_model().model_copy(
        update={"user_tower": UserTowerConfig(use_user_id=False, history="sum", history_length=history_length)}
    )
    network = TwoTowerModel(config, catalog_schema(dataset)).eval()
    history = UserHistory.from_tables(dataset.n_users, dataset.train)[0]
    users = torch.arange(dataset.n_users)
    with torch.no_grad():
        expected = network.user_vectors(users, *history.last_items(users, history_length))
    torch.testing.assert_close(network.embed_users(users, history.last_items), expected, rtol=1e-5, atol=1e-5)


def test_exported_user_vectors_read_all_known_items(dataset):
    network = TwoTowerModel(linear_model(), catalog_schema(dataset)).eval()
    indptr, seen = user_item_history(dataset)
    users = np.arange(dataset.n_users)
    items, mask = last_items(indptr, seen, users, 400)
    assert mask.sum() == len(seen)  # 400 slots hold every user's items
    with torch.no_grad():
        expected = network.user_vectors(torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(mask))
    np.testing.assert_allclose(compute_user_vectors(network, indptr, seen), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_user_batches_hold_every_training_item(dataset):
    examples = TrainingUsers(dataset, RunConfig(model=linear_model(), train=FAST))
    batch = examples.batch(torch.tensor([4, 0, 17]))
    for row, user in enumerate(batch.user.tolist()):
        expected = np.sort(dataset.train.item[dataset.train.user == user])
        np.testing.assert_array_equal(np.sort(batch.item[batch.item_row == row].numpy()), expected)
        # The history contains the same items, left-padded.
        np.testing.assert_array_equal(np.sort(batch.history[row][batch.history_mask[row]].numpy()), expected)
    assert len(examples) == len(np.unique(dataset.train.user))


def _batch_and_network(dataset, **loss: object):
    torch.manual_seed(0)
    config = RunConfig(model=linear_model(**loss), train=FAST)
    network = TwoTowerModel(config.model, catalog_schema(dataset))
    batch = TrainingUsers(dataset, config).batch(torch.arange(8))
    return network, batch


def test_loss_is_the_squared_error_plus_the_penalty(dataset):
    network, batch = _batch_and_network(dataset, input_dropout=0.0, l2=20.0)
    target = torch.zeros(8, dataset.n_items)
    target[batch.item_row, batch.item] = 1.0
    inputs = target.clone()  # nothing hidden: the history is every training item
    scores = (inputs @ network.item_vectors(torch.arange(dataset.n_items))) @ network.all_item_vectors().T
    penalty = sum(p.square().sum() for p in network.parameters())
    expected = (scores - target).square().sum() / 8 + 20.0 / dataset.n_users * penalty
    torch.testing.assert_close(reconstruction_loss(network, batch, network.config.loss), expected)


def test_example_weights_scale_the_error_of_their_pairs(dataset):
    network, batch = _batch_and_network(dataset, input_dropout=0.0, l2=0.0)
    weight = torch.linspace(1.0, 3.0, batch.item.shape[0])
    weighted = batch._replace(weight=weight)
    target = torch.zeros(8, dataset.n_items)
    target[batch.item_row, batch.item] = 1.0
    scores = (target @ network.item_vectors(torch.arange(dataset.n_items))) @ network.all_item_vectors().T
    element_weight = torch.ones_like(target)
    element_weight[batch.item_row, batch.item] = weight
    expected = (element_weight * (scores - target).square()).sum() / 8
    torch.testing.assert_close(reconstruction_loss(network, weighted, network.config.loss), expected)


def test_user_weights_follow_the_item_counts(dataset):
    examples = TrainingUsers(dataset, RunConfig(model=linear_model(user_weight_exponent=0.5), train=FAST))
    counts = np.bincount(dataset.train.user, minlength=dataset.n_users)
    active = counts > 0
    expected = np.zeros(dataset.n_users)
    expected[active] = counts[active] ** -0.5 / np.mean(counts[active] ** -0.5)
    np.testing.assert_allclose(examples.user_weight.numpy(), expected, rtol=1e-5)
    batch = examples.batch(torch.tensor([4, 0, 17]))
    np.testing.assert_allclose(batch.row_weight.numpy(), expected[batch.user.numpy()], rtol=1e-5)
    assert TrainingUsers(dataset, RunConfig(model=linear_model(), train=FAST)).batch(torch.arange(3)).row_weight is None


def test_user_weights_scale_each_row_of_the_error(dataset):
    network, batch = _batch_and_network(dataset, input_dropout=0.0, l2=0.0)
    row_weight = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5, 3.0, 0.75, 1.0])
    target = torch.zeros(8, dataset.n_items)
    target[batch.item_row, batch.item] = 1.0
    scores = (target @ network.item_vectors(torch.arange(dataset.n_items))) @ network.all_item_vectors().T
    expected = (row_weight.unsqueeze(1) * (scores - target).square()).sum() / 8
    loss = reconstruction_loss(network, batch._replace(row_weight=row_weight), network.config.loss)
    torch.testing.assert_close(loss, expected)


def test_hidden_items_weigh_more(dataset):
    # With every item hidden the sum is zero, so each score is 0 and each of the users'
    # items adds hidden_item_weight * 1**2 to the error.
    network, batch = _batch_and_network(dataset, input_dropout=0.999999, hidden_item_weight=4.0, l2=0.0)
    loss = reconstruction_loss(network, batch, network.config.loss)
    assert loss.item() == pytest.approx(4.0 * batch.item.shape[0] / 8)


@pytest.mark.parametrize("history", ["sum", "mean"])
def test_zero_diagonal_leaves_item_out(history, dataset):
    """With zero_diagonal an item's score is the score it gets when only the user's other items are the input."""
    torch.manual_seed(0)
    network = TwoTowerModel(linear_model(history, zero_diagonal=True), catalog_schema(dataset))
    users = torch.arange(6)
    inputs = (torch.rand(6, dataset.n_items) < 0.05).float()  # (B, I)
    catalogue = network.all_item_vectors()  # (I, D)
    scores = network.user_vectors(users, history_matrix=inputs) @ catalogue.T  # (B, I)
    adjusted = scores - network.user_tower.own_terms(inputs, catalogue)
    for row, item in zip(*torch.nonzero(inputs, as_tuple=True)):
        others = inputs[row].clone()
        others[item] = 0.0
        without = network.user_vectors(users[row : row + 1], history_matrix=others[None]) @ catalogue[item]
        if history == "sum":
            torch.testing.assert_close(adjusted[row, item], without[0], atol=1e-6, rtol=1e-4)
        else:  # the mean divides by the full count, so the own term leaves the others' sum over that count
            count = inputs[row].sum()
            torch.testing.assert_close(adjusted[row, item], without[0] * (count - 1) / count, atol=1e-6, rtol=1e-4)
    # Items outside the input keep their scores.
    torch.testing.assert_close(adjusted[inputs == 0], scores[inputs == 0])


def test_zero_diagonal_loss_value(dataset):
    network, batch = _batch_and_network(dataset, input_dropout=0.0, l2=0.0, zero_diagonal=True)
    target = torch.zeros(8, dataset.n_items)
    target[batch.item_row, batch.item] = 1.0
    item_vectors = network.item_vectors(torch.arange(dataset.n_items))
    own = (item_vectors * network.all_item_vectors()).sum(dim=1)  # (I,): each item's score from itself
    scores = (target @ item_vectors) @ network.all_item_vectors().T - target * own
    expected = (scores - target).square().sum() / 8
    torch.testing.assert_close(reconstruction_loss(network, batch, network.config.loss), expected)


def test_zero_diagonal_trains(dataset, tmp_path, popularity_validation_ndcg):
    model = linear_model("sum", zero_diagonal=True)
    result = train_model(dataset, RunConfig(model=model, train=FAST), tmp_path, evaluate_test=False)
    assert result.best_score is not None
    assert result.best_score > 2 * popularity_validation_ndcg


@pytest.mark.parametrize(
    ("model", "train", "message"),
    [
        ({"loss": {"kind": "reconstruction"}}, {}, "set user_tower.history to 'sum' or 'mean', got 'none'"),
        ({"loss": {"kind": "bpr", "zero_diagonal": True}}, {}, "zero_diagonal applies only to kind='reconstruction'"),
        (
            {**linear_model(zero_diagonal=True).model_dump(mode="json"), "user_tower": {"history": "sum"}},
            {},
            "loss.zero_diagonal needs a linear user tower",
        ),
        (
            {"loss": {"kind": "reconstruction"}, "user_tower": {"history": "gru", "use_user_id": False}},
            {},
            "got 'gru'",
        ),
        ({"loss": {"kind": "bpr", "l2": 5.0}}, {}, "l2 applies only to kind='reconstruction'"),
        ({"loss": {"kind": "full_softmax", "input_dropout": 0.2}}, {}, "input_dropout applies only"),
        ({"loss": {"kind": "bpr", "user_weight_exponent": 0.5}}, {}, "user_weight_exponent applies only"),
        ({}, {"users_per_batch": 64}, "users_per_batch applies only to loss kind 'reconstruction'"),
        (linear_model().model_dump(mode="json"), {"batch_size": 256}, "set train.users_per_batch instead"),
        (
            {"user_tower": {"history": "attention", "history_length": 513, "use_user_id": False}},
            {},
            "history_length=513 is above 512, the limit of the attention encoder",
        ),
    ],
)
def test_invalid_combinations_are_named(model, train, message):
    with pytest.raises(InputError, match=re.escape(message)):
        RunConfig.from_json(json.dumps({"model": model, "train": train}))


def test_each_lightning_batch_is_one_step(dataset):
    # Time limits and stop requests are checked between Lightning batches, so a
    # reconstruction epoch must not group its catalogue-wide steps.
    module = TwoTowerDataModule(dataset, RunConfig(model=linear_model(), train=FAST))
    module.setup()
    groups = list(module.train_dataloader())
    assert len(groups) == -(-len(module.pairs) // 64)
    assert all(len(group) == 1 for group in groups)


def test_onnx_check_scales_with_large_sums(dataset):
    # Sums over 2,048 items of large vectors reach hundreds, where float32 rounding alone
    # differs by more than 1e-4 between torch and onnxruntime.
    # Hashed item ids: 64 rows shared by all items give every history large sums.
    config = linear_model().model_copy(
        update={
            "user_tower": UserTowerConfig(use_user_id=False, history="sum", history_length=2048),
            "embeddings": EmbeddingConfig(hash_above=50, n_hash_buckets=64),
        }
    )
    torch.manual_seed(0)
    network = TwoTowerModel(config, catalog_schema(dataset))
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    assert export_user_tower(network)
