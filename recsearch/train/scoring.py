"""A trained two-tower network as a Scorer for the shared evaluator."""

from __future__ import annotations

import numpy as np
import torch

from recsearch.models.two_tower import TwoTowerModel
from recsearch.train.data import UserHistory


class TwoTowerScorer:
    """Scores every item for a batch of users: user vectors times the cached item vectors.

    The item vectors are computed once at construction, so build a new scorer after
    the weights change. ``history`` gives each user's known items, read by history encoders.
    """

    def __init__(self, model: TwoTowerModel, history: UserHistory | None) -> None:
        if model.uses_history and history is None:
            raise ValueError("this model encodes user histories; pass the users' known items as history")
        self.model = model
        self.device = next(model.parameters()).device
        self.history = history.to(self.device) if history is not None and model.uses_history else None
        with torch.no_grad():
            self.item_vectors = model.all_item_vectors()  # (n_items, D)

    @torch.no_grad()
    def __call__(self, users: np.ndarray) -> torch.Tensor:
        user = torch.as_tensor(users, dtype=torch.int64, device=self.device)
        history = None if self.history is None else self.history.last_items
        vectors = self.model.embed_users(user, history)  # (B, D)
        return (vectors @ self.item_vectors.T).float()  # (B, n_items)
