"""Parameter count and serving size of a configuration, known before any training."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recsearch.models.config import ModelConfig
from recsearch.models.schema import CatalogSchema
from recsearch.models.two_tower import TwoTowerModel

_FLOAT32_BYTES = 4


@dataclass(frozen=True)
class ModelSize:
    """Sizes of one configuration on one dataset."""

    n_parameters: int  # trainable parameters of the whole network
    n_user_tower_parameters: int  # those the query side needs, shared item-id table included
    serving_bytes: int  # float32 item vectors + user vectors + user tower weights


def estimate_size(config: ModelConfig, schema: CatalogSchema) -> ModelSize:
    """Compute sizes by building the network on PyTorch's meta device, which allocates no memory.

    Serving keeps every item vector (for the index), one vector per known user and the
    user tower's weights, all as float32. FAISS index overhead is not included.
    """
    with torch.device("meta"):
        model = TwoTowerModel(config, schema)
    n_parameters = sum(p.numel() for p in model.parameters())
    n_user_tower = sum(p.numel() for p in model.user_tower.parameters())
    vectors = (schema.n_items + schema.n_users) * config.embedding_dim
    return ModelSize(
        n_parameters=n_parameters,
        n_user_tower_parameters=n_user_tower,
        serving_bytes=(vectors + n_user_tower) * _FLOAT32_BYTES,
    )
