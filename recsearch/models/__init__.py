"""The two-tower network, its configuration, embedding tables, losses and size estimates.

Plain PyTorch: nothing here imports Lightning or reads files.
"""

from recsearch.models.config import (
    EmbeddingConfig,
    FeatureConfig,
    ItemTowerConfig,
    LossConfig,
    MLPConfig,
    ModelConfig,
    UserTowerConfig,
)
from recsearch.models.embeddings import HashedEmbedding, MixedDimEmbedding, PlainEmbedding, build_embedding
from recsearch.models.losses import Batch, bpr_loss, compute_loss, full_softmax_loss, sampled_softmax_loss
from recsearch.models.schema import CatalogSchema
from recsearch.models.sizing import ModelSize, estimate_size
from recsearch.models.two_tower import TwoTowerModel

__all__ = [
    "Batch",
    "CatalogSchema",
    "EmbeddingConfig",
    "FeatureConfig",
    "HashedEmbedding",
    "ItemTowerConfig",
    "LossConfig",
    "MLPConfig",
    "MixedDimEmbedding",
    "ModelConfig",
    "ModelSize",
    "PlainEmbedding",
    "TwoTowerModel",
    "UserTowerConfig",
    "bpr_loss",
    "build_embedding",
    "compute_loss",
    "estimate_size",
    "full_softmax_loss",
    "sampled_softmax_loss",
]
