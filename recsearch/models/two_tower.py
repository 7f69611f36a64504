"""The two-tower network: score(user, item) = user_vector . item_vector.

Because the score is a plain dot product, an inner-product FAISS index over
``item_vectors`` returns exactly the model's top-k for a ``user_vectors`` row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsearch.errors import InputError
from recsearch.models.config import ModelConfig
from recsearch.models.schema import CatalogSchema
from recsearch.models.towers import ItemTower, UserTower


class TwoTowerModel(nn.Module):
    """A user tower and an item tower whose outputs meet in a dot product."""

    def __init__(self, config: ModelConfig, schema: CatalogSchema) -> None:
        super().__init__()
        check_config_against_schema(config, schema)
        self.config = config
        self.n_users = schema.n_users
        self.n_items = schema.n_items
        self.item_tower = ItemTower(
            config.item_tower,
            output_dim=config.embedding_dim,
            n_items=schema.n_items,
            item_frequency=schema.item_frequency,
            features=dict(schema.item_features),
            cardinality=dict(schema.feature_cardinality),
            embeddings=config.embeddings,
        )
        self.user_tower = UserTower(
            config.user_tower,
            output_dim=config.embedding_dim,
            n_users=schema.n_users,
            user_frequency=schema.user_frequency,
            item_embedding=self.item_tower.id_embedding,
            item_dim=config.item_tower.id_dim,
            embeddings=config.embeddings,
        )

    @property
    def uses_history(self) -> bool:
        return self.user_tower.uses_history

    @property
    def history_length(self) -> int:
        return self.config.user_tower.history_length

    def user_vectors(
        self, user: torch.Tensor, history: torch.Tensor | None = None, history_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed users; with l2_normalize the vector is also divided by the temperature."""
        vectors = self.user_tower(user, history, history_mask)  # (B, D)
        if self.config.l2_normalize:
            vectors = F.normalize(vectors, dim=-1) / self.config.temperature
        return vectors

    def item_vectors(self, item: torch.Tensor) -> torch.Tensor:
        """Embed items (L2-normalised when the configuration sets l2_normalize)."""
        vectors = self.item_tower(item)  # (B, D)
        if self.config.l2_normalize:
            vectors = F.normalize(vectors, dim=-1)
        return vectors

    @torch.no_grad()
    def all_item_vectors(self, batch_size: int = 65_536) -> torch.Tensor:
        """Embed the whole catalogue in batches; call in eval mode."""
        device = next(self.parameters()).device
        parts = []
        for start in range(0, self.n_items, batch_size):
            items = torch.arange(start, min(start + batch_size, self.n_items), device=device)
            parts.append(self.item_vectors(items))
        return torch.cat(parts)  # (n_items, D)

    def forward(
        self,
        user: torch.Tensor,
        item: torch.Tensor,
        history: torch.Tensor | None = None,
        history_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Score (user, item) pairs: (B,) users and (B,) items give (B,) scores."""
        return (self.user_vectors(user, history, history_mask) * self.item_vectors(item)).sum(-1)


def check_config_against_schema(config: ModelConfig, schema: CatalogSchema) -> None:
    """Raise InputError when the configuration needs what the dataset lacks."""
    available = sorted(schema.item_features)
    for feature in config.item_tower.features:
        if feature.name not in schema.item_features:
            raise InputError(
                f"item feature {feature.name!r} is not in the dataset; available item features: "
                f"{', '.join(available) or '(none)'}"
            )
    if config.loss.kind == "full_softmax" and schema.n_items > config.loss.max_full_softmax_items:
        raise InputError(
            f"full_softmax scores all {schema.n_items} items per example, above max_full_softmax_items="
            f"{config.loss.max_full_softmax_items}; use loss kind 'sampled_softmax' or raise the limit"
        )
