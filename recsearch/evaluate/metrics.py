"""Top-k ranking metrics with binary relevance, one value per user.

Every function takes ``hits``, a (U, K) boolean array whose row u marks which of
user u's top-K recommended items are relevant (position 0 is the best-ranked), and
``n_relevant`` (U,), the number of relevant items of each user. A metric "at k"
reads the first k columns, so one top-K ranking serves every k <= K.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("recall", "ndcg", "hit_rate", "mrr", "map")


def _check(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if hits.ndim != 2:
        raise ValueError(f"hits must be a (users, K) array, got shape {hits.shape}")
    if not 1 <= k <= hits.shape[1]:
        raise ValueError(f"k must be within [1, {hits.shape[1]}] for a top-{hits.shape[1]} ranking, got {k}")
    if np.any(n_relevant < 1):
        raise ValueError("every user must have at least one relevant item; drop users without any first")
    return hits[:, :k].astype(np.float64), n_relevant.astype(np.float64)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))  # (k,) 1/log2(rank + 1), rank from 1


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Relevant items in the top k over all of the user's relevant items."""
    top, relevant = _check(hits, n_relevant, k)
    return top.sum(axis=1) / relevant


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """DCG of the top k over the ideal DCG, whose min(k, n_relevant) hits fill the first ranks."""
    top, relevant = _check(hits, n_relevant, k)
    discounts = _discounts(k)
    dcg = top @ discounts  # (U,)
    ideal_cumulative = np.cumsum(discounts)  # (k,) ideal DCG of 1..k hits
    n_ideal = np.minimum(relevant, k).astype(np.int64)
    return dcg / ideal_cumulative[n_ideal - 1]


def hit_rate_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """1 when at least one relevant item is in the top k, else 0."""
    top, _ = _check(hits, n_relevant, k)
    return (top.sum(axis=1) > 0).astype(np.float64)


def mrr_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """1 / rank of the first relevant item within the top k, 0 when there is none."""
    top, _ = _check(hits, n_relevant, k)
    first = top.argmax(axis=1)  # index of the first hit, 0 also when there is none
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Mean of precision@i over the ranks i of the hits, divided by min(k, n_relevant)."""
    top, relevant = _check(hits, n_relevant, k)
    precision = np.cumsum(top, axis=1) / np.arange(1, k + 1)  # (U, k) precision@i
    return (precision * top).sum(axis=1) / np.minimum(relevant, k)


METRIC_FUNCTIONS = {
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
}


def catalogue_coverage(top_items: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top k (entries < 0 are empty slots)."""
    shown = top_items[:, :k].ravel()
    shown = shown[shown >= 0]
    return float(np.unique(shown).shape[0] / n_items) if n_items else 0.0
