"""Training objectives of the two-tower model, computed on whole batches.

Dimension legend: B batch, K negatives per example, D embedding dimension, I items.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from recsearch.models.config import LossConfig
from recsearch.models.two_tower import TwoTowerModel, history_matrix


class Batch(NamedTuple):
    """A batch of positive (user, item) pairs with the user's history before each pair.

    For the reconstruction loss a batch contains users instead: ``item`` lists all their
    training items, ``item_row`` the batch row of each, and the history is each user's
    latest items (P below: the pairs of the batch's users).
    """

    user: torch.Tensor  # (B,) int64
    item: torch.Tensor  # (B,) int64, or (P,) with item_row
    weight: torch.Tensor | None = None  # (B,) or (P,) float32 example weight, None for 1
    history: torch.Tensor | None = None  # (B, N) int64 item indices, left-padded
    history_mask: torch.Tensor | None = None  # (B, N) bool, True where the history slot contains an item
    item_row: torch.Tensor | None = None  # (P,) int64 batch row of each item, reconstruction only
    row_weight: torch.Tensor | None = None  # (B,) float32 weight of each user's error, reconstruction only


def sample_negatives(n_items: int, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Draw items uniformly in one call.

    NOTE: a draw can hit one of the user's own positives; with thousands of items
    this is rare and is accepted as label noise, as most BPR implementations do.
    """
    return torch.randint(0, n_items, shape, device=device)


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean()
    return (values * weight).sum() / weight.sum()


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """-log sigmoid(positive - negative), averaged over the (B, K) pairs."""
    per_example = -F.logsigmoid(positive.unsqueeze(1) - negative).mean(dim=1)  # (B,)
    return _weighted_mean(per_example, weight)


def sampled_softmax_loss(
    user_vectors: torch.Tensor,
    item_vectors: torch.Tensor,
    item: torch.Tensor,
    *,
    log_probability: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax cross-entropy where the other items of the batch are the negatives.

    A popular item appears as an in-batch negative more often than a rare one; subtracting
    each item's log sampling probability (logQ correction, Yi et al., RecSys 2019) removes
    that bias. Other rows holding the same item as the positive are masked out.
    """
    # The (B, B) logits are edited in place, which saves two (B, B) copies. This is safe
    # because the matrix product's backward needs only its inputs, not its output.
    logits = user_vectors @ item_vectors.T  # (B, B)
    if log_probability is not None:
        logits.sub_(log_probability[item].unsqueeze(0))
    same_item = item.unsqueeze(0) == item.unsqueeze(1)  # (B, B)
    same_item.fill_diagonal_(False)
    logits.masked_fill_(same_item, torch.finfo(logits.dtype).min)
    target = torch.arange(item.shape[0], device=item.device)
    per_example = F.cross_entropy(logits, target, reduction="none")  # (B,)
    return _weighted_mean(per_example, weight)


def full_softmax_loss(
    user_vectors: torch.Tensor, catalogue_vectors: torch.Tensor, item: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax cross-entropy over every item of the catalogue."""
    logits = user_vectors @ catalogue_vectors.T  # (B, I)
    per_example = F.cross_entropy(logits, item, reduction="none")  # (B,)
    return _weighted_mean(per_example, weight)


def reconstruction_loss(model: TwoTowerModel, batch: Batch, config: LossConfig) -> torch.Tensor:
    """Weighted squared error of each user's catalogue scores against their items, plus the L2 penalty.

    A share ``config.input_dropout`` of each user's history is hidden from the user tower
    (drawn anew every step), so the model learns to predict items from the user's other
    items, as EASE's zero diagonal forces. Returns the mean over users of the summed error.
    """
    assert batch.history is not None, "reconstruction batches carry each user's history"
    assert batch.history_mask is not None, "reconstruction batches carry the history mask"
    assert batch.item_row is not None, "reconstruction batches carry the row of each item"
    n_users, n_items = batch.user.shape[0], model.n_items
    hidden = batch.history_mask & (torch.rand(batch.history_mask.shape, device=batch.user.device) < config.input_dropout)
    visible = batch.history_mask & ~hidden  # (B, N)
    inputs = history_matrix(batch.history, visible, n_items)  # (B, I)
    users = model.user_vectors(batch.user, history_matrix=inputs)  # (B, D)
    catalogue = model.item_vectors(torch.arange(n_items, device=batch.user.device))  # (I, D)
    scores = users @ catalogue.T  # (B, I)
    if config.zero_diagonal:
        scores = scores - model.user_tower.own_terms(inputs, catalogue)

    target = torch.zeros_like(scores)
    target[batch.item_row, batch.item] = 1.0
    element_weight = history_matrix(batch.history, hidden, n_items) * (config.hidden_item_weight - 1.0) + 1.0
    if batch.weight is not None:  # example weighting: a pair's error counts weight times
        element_weight[batch.item_row, batch.item] *= batch.weight
    if batch.row_weight is not None:  # user weighting: a whole row's error counts row_weight times
        element_weight *= batch.row_weight.unsqueeze(1)
    error = (element_weight * (scores - target).square()).sum() / n_users
    if config.l2 == 0:
        return error
    # Each step takes the batch's share of the penalty, divided like the error by the batch
    # size, so over an epoch the objective is (summed error + l2 * penalty) / B, as in EASE.
    penalty = sum(parameter.square().sum() for parameter in model.parameters())
    return error + config.l2 / model.n_users * penalty


def compute_loss(
    model: TwoTowerModel,
    batch: Batch,
    config: LossConfig,
    *,
    item_log_probability: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the batch's training loss under ``config``.

    ``item_log_probability`` (I,) is the log of each item's share of the training
    pairs, used by sampled softmax with popularity correction.
    """
    if config.kind == "reconstruction":
        return reconstruction_loss(model, batch, config)
    users = model.user_vectors(batch.user, batch.history, batch.history_mask)  # (B, D)

    if config.kind == "bpr":
        negatives = sample_negatives(model.n_items, (config.n_negatives, batch.item.shape[0]), batch.item.device)
        # One tower call for positives and negatives. The candidate axis leads, so the
        # product with the (B, D) users broadcasts over whole contiguous (B, D) blocks.
        # On CPU that was about 3x faster than broadcasting over a middle axis (torch 2.13).
        candidates = torch.cat([batch.item.unsqueeze(0), negatives], dim=0)  # (1 + K, B)
        items = model.item_vectors(candidates.reshape(-1)).view(*candidates.shape, -1)  # (1 + K, B, D)
        scores = (items * users).sum(-1)  # (1 + K, B)
        return bpr_loss(scores[0], scores[1:].T, batch.weight)

    if config.kind == "sampled_softmax":
        log_probability = item_log_probability if config.popularity_correction else None
        if config.popularity_correction:
            assert log_probability is not None, "popularity correction needs item_log_probability"
        return sampled_softmax_loss(
            users, model.item_vectors(batch.item), batch.item, log_probability=log_probability, weight=batch.weight
        )

    catalogue = model.item_vectors(torch.arange(model.n_items, device=batch.item.device))  # (I, D)
    return full_softmax_loss(users, catalogue, batch.item, batch.weight)
