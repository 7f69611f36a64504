"""The user and item towers, their MLP and the encoders of a user's recent items.

Dimension legend: B batch, N history length, F fields, D model embedding dimension,
E item-id embedding dimension.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from recsearch.models.config import EmbeddingConfig, ItemTowerConfig, MLPConfig, UserTowerConfig
from recsearch.models.embeddings import build_embedding

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
# Added to attention logits of padded positions; finite, so a row with no history
# gives a uniform softmax instead of NaN.
_MASKED_LOGIT = -1e4


def build_mlp(input_dim: int, output_dim: int, config: MLPConfig) -> nn.Module:
    """Return ``config.depth`` linear layers ending in ``output_dim`` (see MLPConfig for depth 0)."""
    if config.depth == 0:
        return nn.Identity() if input_dim == output_dim else nn.Linear(input_dim, output_dim, bias=False)

    layers: list[nn.Module] = []
    width = input_dim
    for _ in range(config.depth - 1):
        layers.append(nn.Linear(width, config.width))
        if config.norm == "batch":
            layers.append(nn.BatchNorm1d(config.width))
        elif config.norm == "layer":
            layers.append(nn.LayerNorm(config.width))
        layers.append(_ACTIVATIONS[config.activation]())
        if config.dropout > 0:
            layers.append(nn.Dropout(config.dropout))
        width = config.width
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


class MeanHistory(nn.Module):
    """Mean of the item vectors present in the history; zeros when there are none."""

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(vectors.dtype)  # (B, N)
        total = (vectors * weights.unsqueeze(-1)).sum(dim=1)  # (B, E)
        return total / weights.sum(dim=1, keepdim=True).clamp_min(1.0)


class SumHistory(nn.Module):
    """Sum of the item vectors present in the history, so a longer history gives a larger input."""

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (vectors * mask.to(vectors.dtype).unsqueeze(-1)).sum(dim=1)  # (B, E)


class RecencyHistory(nn.Module):
    """Weighted mean where the n-th most recent item weighs ``decay**n`` (position N-1 is the latest)."""

    def __init__(self, history_length: int, decay: float) -> None:
        super().__init__()
        exponents = torch.arange(history_length - 1, -1, -1, dtype=torch.float32)
        self.register_buffer("position_weight", decay**exponents, persistent=False)  # (N,)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(vectors.dtype) * self.position_weight.to(vectors.dtype)  # (B, N)
        total = (vectors * weights.unsqueeze(-1)).sum(dim=1)  # (B, E)
        return total / weights.sum(dim=1, keepdim=True).clamp_min(1e-6)


class GRUHistory(nn.Module):
    """Final hidden state of a GRU read over the left-padded history, oldest item first."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        inputs = vectors * mask.unsqueeze(-1).to(vectors.dtype)  # (B, N, E), padding as zeros
        _, hidden = self.gru(inputs)  # (1, B, E)
        return hidden[0] * mask.any(dim=1, keepdim=True).to(vectors.dtype)


class AttentionHistory(nn.Module):
    """One single-head self-attention block with learned positions, then a masked mean.

    Written with plain matrix products instead of nn.MultiheadAttention, so ONNX
    export needs no special attention operator and padded rows cannot yield NaN.
    """

    def __init__(self, history_length: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.zeros(history_length, dim))  # (N, E)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.norm_attention = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm_output = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.pool = MeanHistory()
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = vectors + self.position  # (B, N, E)
        logits = torch.matmul(self.query(x), self.key(x).transpose(1, 2)) * self.scale  # (B, N, N)
        logits = logits + (1.0 - mask.to(x.dtype)).unsqueeze(1) * _MASKED_LOGIT
        attended = torch.matmul(torch.softmax(logits, dim=-1), self.value(x))  # (B, N, E)
        x = self.norm_attention(x + self.dropout(attended))
        x = self.norm_output(x + self.dropout(self.feed_forward(x)))
        return self.pool(x, mask)


def build_history_encoder(config: UserTowerConfig, dim: int) -> nn.Module | None:
    """Return the encoder named by ``config.history``, or None for "none"."""
    if config.history == "mean":
        return MeanHistory()
    if config.history == "sum":
        return SumHistory()
    if config.history == "recency":
        return RecencyHistory(config.history_length, config.recency_decay)
    if config.history == "gru":
        return GRUHistory(dim)
    if config.history == "attention":
        return AttentionHistory(config.history_length, dim, config.mlp.dropout)
    return None


class ItemTower(nn.Module):
    """Item index -> item vector, from the item-id embedding and the item's categorical features."""

    def __init__(
        self,
        config: ItemTowerConfig,
        *,
        output_dim: int,
        n_items: int,
        item_frequency: np.ndarray,
        features: dict[str, np.ndarray],
        cardinality: dict[str, int],
        embeddings: EmbeddingConfig,
    ) -> None:
        super().__init__()
        self.id_embedding = build_embedding(n_items, config.id_dim, embeddings, frequency=item_frequency)
        self.feature_names = [feature.name for feature in config.features]
        self.feature_embeddings = nn.ModuleList()
        for index, feature in enumerate(config.features):
            values = torch.as_tensor(features[feature.name], dtype=torch.int64)
            self.register_buffer(f"feature_{index}", values, persistent=False)  # (n_items,)
            self.feature_embeddings.append(build_embedding(cardinality[feature.name], feature.dim, embeddings))
        input_dim = config.id_dim + sum(feature.dim for feature in config.features)
        self.mlp = build_mlp(input_dim, output_dim, config.mlp)

    def forward(self, item: torch.Tensor) -> torch.Tensor:
        parts = [self.id_embedding(item)]  # [(B, E)]
        for index, embedding in enumerate(self.feature_embeddings):
            value = getattr(self, f"feature_{index}")[item]  # (B,)
            # Index 0 is the missing value: a zero vector whatever the table's storage.
            parts.append(embedding(value) * (value != 0).unsqueeze(-1).to(parts[0].dtype))
        return self.mlp(torch.cat(parts, dim=-1))  # (B, D)


class UserTower(nn.Module):
    """(user index, recent items) -> user vector.

    Index ``n_users`` is the unknown user, for users unseen in training. The history is
    left-padded: position N-1 is the most recent item and ``history_mask`` marks real items.
    """

    def __init__(
        self,
        config: UserTowerConfig,
        *,
        output_dim: int,
        n_users: int,
        user_frequency: np.ndarray,
        item_embedding: nn.Module,
        item_dim: int,
        embeddings: EmbeddingConfig,
    ) -> None:
        super().__init__()
        self.unknown_user = n_users
        self.user_id_dropout = config.user_id_dropout
        self.id_embedding = None
        input_dim = 0
        if config.use_user_id:
            frequency = np.append(user_frequency, 0)  # the unknown-user row
            self.id_embedding = build_embedding(n_users + 1, config.id_dim, embeddings, frequency=frequency)
            input_dim += config.id_dim

        self.history_encoder = build_history_encoder(config, item_dim)
        # Shared with the item tower: the history reads the same item-id vectors the
        # item tower starts from (module.parameters() lists shared tensors once).
        self.item_embedding = item_embedding if self.history_encoder is not None else None
        if self.history_encoder is not None:
            input_dim += item_dim
        self.mlp = build_mlp(input_dim, output_dim, config.mlp)

    @property
    def uses_history(self) -> bool:
        return self.history_encoder is not None

    def forward(
        self,
        user: torch.Tensor,
        history: torch.Tensor | None = None,
        history_mask: torch.Tensor | None = None,
        *,
        history_matrix: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed users from ids and a left-padded history, or from ``history_matrix``.

        ``history_matrix`` (B, I) contains each user's item weights (1 for an item of the
        history, 0 otherwise) and gives the same vector as the padded history with sum
        or mean pooling, without gathering (B, N, E) item vectors.
        """
        parts = []
        if self.id_embedding is not None:
            if self.training and self.user_id_dropout > 0:
                dropped = torch.rand(user.shape, device=user.device) < self.user_id_dropout
                user = torch.where(dropped, torch.full_like(user, self.unknown_user), user)
            parts.append(self.id_embedding(user))  # (B, U)
        if self.history_encoder is not None and history_matrix is not None:
            parts.append(self._pool_matrix(history_matrix))  # (B, E)
        elif self.history_encoder is not None:
            assert history is not None and history_mask is not None, "this user tower needs the history"
            vectors = self.item_embedding(history)  # (B, N, E)
            parts.append(self.history_encoder(vectors, history_mask))  # (B, E)
        inputs = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return self.mlp(inputs)  # (B, D)

    def own_terms(self, matrix: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
        """Return the part of each (user, item) score that the item's own input gives: (B, I).

        ``matrix`` (B, I) contains the input weights of ``forward``'s ``history_matrix`` and
        ``item_vectors`` (I, D) the item tower's outputs. Valid for a linear tower only: sum
        or mean pooling, no user id and no hidden layer (ModelConfig checks this).
        """
        items = torch.arange(matrix.shape[1], device=matrix.device)
        alone = self.mlp(self.item_embedding(items))  # (I, D): the user vector of a history of one item
        terms = matrix * (alone * item_vectors).sum(dim=1)  # (B, I)
        if isinstance(self.history_encoder, MeanHistory):
            terms = terms / matrix.sum(dim=1, keepdim=True).clamp_min(1.0)
        return terms

    def _pool_matrix(self, matrix: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.history_encoder, (SumHistory, MeanHistory)):
            raise ValueError(f"a history matrix needs sum or mean pooling, not {type(self.history_encoder).__name__}")
        items = torch.arange(matrix.shape[1], device=matrix.device)
        pooled = matrix @ self.item_embedding(items)  # (B, I) @ (I, E)
        if isinstance(self.history_encoder, MeanHistory):
            pooled = pooled / matrix.sum(dim=1, keepdim=True).clamp_min(1.0)
        return pooled
