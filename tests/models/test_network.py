import numpy as np
import pytest
import torch

from recsearch.errors import InputError
from recsearch.models import (
    Batch,
    CatalogSchema,
    EmbeddingConfig,
    FeatureConfig,
    HashedEmbedding,
    ItemTowerConfig,
    LossConfig,
    MixedDimEmbedding,
    MLPConfig,
    ModelConfig,
    TwoTowerModel,
    UserTowerConfig,
    bpr_loss,
    compute_loss,
    estimate_size,
    full_softmax_loss,
    sampled_softmax_loss,
)
from recsearch.models.embeddings import assign_frequency_tiers

N_USERS, N_ITEMS = 30, 20


def schema() -> CatalogSchema:
    rng = np.random.default_rng(0)
    return CatalogSchema(
        n_users=N_USERS,
        n_items=N_ITEMS,
        item_frequency=rng.integers(0, 50, N_ITEMS).astype(float),
        user_frequency=rng.integers(1, 10, N_USERS).astype(float),
        item_features={"category": rng.integers(0, 4, N_ITEMS)},
        feature_cardinality={"category": 4},
    )


def batch(size: int = 6, length: int = 5) -> Batch:
    generator = torch.Generator().manual_seed(0)
    return Batch(
        user=torch.randint(0, N_USERS, (size,), generator=generator),
        item=torch.randint(0, N_ITEMS, (size,), generator=generator),
        history=torch.randint(0, N_ITEMS, (size, length), generator=generator),
        history_mask=torch.rand(size, length, generator=generator) > 0.3,
    )


CONFIGS = {
    "mf": ModelConfig.matrix_factorization(8),
    "features_mlp": ModelConfig(
        embedding_dim=8,
        item_tower=ItemTowerConfig(id_dim=8, features=(FeatureConfig(name="category", dim=3),), mlp=MLPConfig(depth=2, width=16, norm="batch", dropout=0.1)),
        user_tower=UserTowerConfig(id_dim=4, mlp=MLPConfig(depth=1)),
    ),
    "mixed_hashed": ModelConfig.matrix_factorization(8, embeddings=EmbeddingConfig(n_frequency_tiers=3, hash_above=25, n_hash_buckets=16)),
    **{
        f"history_{encoder}": ModelConfig(
            embedding_dim=8,
            item_tower=ItemTowerConfig(id_dim=8),
            user_tower=UserTowerConfig(id_dim=8, history=encoder, history_length=5, user_id_dropout=0.2, mlp=MLPConfig(depth=2, norm="layer")),
            l2_normalize=True,
            temperature=0.2,
        )
        for encoder in ("mean", "recency", "gru", "attention")
    },
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_size_estimate_equals_built_model(name):
    config = CONFIGS[name]
    model = TwoTowerModel(config, schema())
    assert estimate_size(config, schema()).n_parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_score_is_dot_product_of_tower_outputs(name):
    model = TwoTowerModel(CONFIGS[name], schema()).eval()
    data = batch(length=CONFIGS[name].user_tower.history_length)
    scores = model(data.user, data.item, data.history, data.history_mask)
    users = model.user_vectors(data.user, data.history, data.history_mask)
    items = model.item_vectors(data.item)
    assert torch.allclose(scores, (users * items).sum(-1), atol=1e-6)


@pytest.mark.parametrize("kind", ["bpr", "sampled_softmax", "full_softmax"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_loss_gives_finite_gradients(name, kind):
    model = TwoTowerModel(CONFIGS[name].model_copy(update={"loss": LossConfig(kind=kind)}), schema())
    data = batch(length=CONFIGS[name].user_tower.history_length)
    loss = compute_loss(model, data, LossConfig(kind=kind), item_log_probability=torch.full((N_ITEMS,), -3.0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_history_user_embeds_unknown_user():
    config = CONFIGS["history_mean"]
    model = TwoTowerModel(config, schema()).eval()
    data = batch()
    unknown = torch.full_like(data.user, N_USERS)
    vectors = model.user_vectors(unknown, data.history, data.history_mask)
    assert vectors.shape == (6, 8)
    # Different histories give different vectors for the same (unknown) user.
    assert not torch.allclose(vectors[0], vectors[1])


def test_missing_feature_raises_input_error():
    config = ModelConfig(item_tower=ItemTowerConfig(features=(FeatureConfig(name="brand"),)))
    with pytest.raises(InputError, match="'brand' is not in the dataset; available item features: category"):
        TwoTowerModel(config, schema())


def test_full_softmax_limit_raises_input_error():
    config = ModelConfig(loss=LossConfig(kind="full_softmax", max_full_softmax_items=10))
    with pytest.raises(InputError, match="max_full_softmax_items=10"):
        TwoTowerModel(config, schema())


def test_hashing_and_mixed_dimensions_are_selected():
    model = TwoTowerModel(CONFIGS["mixed_hashed"], schema())
    assert isinstance(model.user_tower.id_embedding, HashedEmbedding)  # 31 rows > 25
    assert isinstance(model.item_tower.id_embedding, MixedDimEmbedding)  # 20 rows, 3 tiers


def test_frequency_tiers_split_interactions_evenly():
    frequency = np.array([50.0, 30.0, 10.0, 5.0, 5.0, 0.0])
    tiers = assign_frequency_tiers(frequency, 2)
    # Item 0 alone has half the interactions; the unseen item goes to the last tier.
    assert tiers.tolist() == [0, 1, 1, 1, 1, 1]


def test_bpr_loss_hand_computed():
    loss = bpr_loss(torch.tensor([2.0]), torch.tensor([[0.0, 2.0]]))
    expected = -(np.log(1 / (1 + np.exp(-2.0))) + np.log(0.5)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_sampled_softmax_equals_full_softmax_over_batch_catalogue():
    users = torch.randn(4, 3)
    items = torch.randn(4, 3)
    item_ids = torch.arange(4)  # the batch contains each item once: it is the whole catalogue
    sampled = sampled_softmax_loss(users, items, item_ids)
    full = full_softmax_loss(users, items, item_ids)
    assert sampled.item() == pytest.approx(full.item(), rel=1e-6)


def test_popularity_correction_subtracts_log_probability():
    users = torch.randn(3, 2)
    items = torch.randn(3, 2)
    ids = torch.arange(3)
    log_q = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    corrected = sampled_softmax_loss(users, items, ids, log_probability=log_q)
    logits = users @ items.T - log_q.unsqueeze(0)
    expected = torch.nn.functional.cross_entropy(logits, ids)
    assert corrected.item() == pytest.approx(expected.item(), rel=1e-6)
