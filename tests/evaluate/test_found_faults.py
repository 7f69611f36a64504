"""Faults found in the full-ranking evaluator, each pinned by a test, and a brute-force reference check."""

import math

import numpy as np
import pytest
import torch

from recsearch.data.load import CsrMatrix
from recsearch.evaluate import evaluate_ranking, top_k_items

METRICS = ("recall", "ndcg", "hit_rate", "mrr", "map")


def csr_of(dense: np.ndarray) -> CsrMatrix:
    users, items = np.nonzero(dense)
    ones = np.ones(users.shape[0], np.float32)
    return CsrMatrix.from_pairs(users.astype(np.int32), items.astype(np.int32), ones, *dense.shape)


def reference_metrics(scores: np.ndarray, target: np.ndarray, known: np.ndarray, k: int) -> dict[int, dict[str, float]]:
    """Metrics of each user with targets, from a plain sort of the items the user does not know."""
    result = {}
    for user in range(scores.shape[0]):
        relevant = set(np.flatnonzero(target[user]).tolist())
        if not relevant:
            continue
        candidates = sorted(np.flatnonzero(~known[user]).tolist(), key=lambda item: -scores[user, item])
        hits = [item in relevant for item in candidates[:k]]
        ranks = [rank for rank, hit in enumerate(hits, start=1) if hit]
        ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
        precision_sum = sum((index + 1) / rank for index, rank in enumerate(ranks))
        result[user] = {
            "recall": len(ranks) / len(relevant),
            "ndcg": sum(1.0 / math.log2(rank + 1) for rank in ranks) / ideal,
            "hit_rate": float(bool(ranks)),
            "mrr": 1.0 / ranks[0] if ranks else 0.0,
            "map": precision_sum / min(k, len(relevant)),
            "top": candidates[:k],
        }
    return result


@pytest.mark.parametrize("seed", range(40))
def test_metrics_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = int(rng.integers(1, 8)), int(rng.integers(1, 12))
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)  # distinct, so the order is unique
    known = rng.random((n_users, n_items)) < rng.random()  # from none to almost every item known
    target = (rng.random((n_users, n_items)) < 0.3) & ~known
    ks = (1, 3, 15)  # 15 exceeds every catalogue here
    table = torch.as_tensor(scores)

    result = evaluate_ranking(lambda users: table[users], target=csr_of(target), exclude=csr_of(known), ks=ks)

    for k in ks:
        expected = reference_metrics(scores, target, known, k)
        assert result.users.tolist() == sorted(expected)
        for name in METRICS:
            values = [expected[user][name] for user in result.users]
            assert result.per_user[f"{name}@{k}"] == pytest.approx(values), f"{name}@{k}"
        shown = {item for user in expected for item in expected[user]["top"]}
        assert result.summary()[f"coverage@{k}"] == pytest.approx(len(shown) / n_items)


def test_tied_scores_ignore_item_index():
    # Ingestion numbers items most frequent first, so index order is the popularity ranking.
    n_items = 2000
    constant = lambda users: torch.zeros(len(users), n_items)  # noqa: E731

    top_10 = top_k_items(constant, np.array([0]), 10, n_items=n_items)[0]
    top_200 = top_k_items(constant, np.array([0]), 200, n_items=n_items)[0]

    assert sorted(top_10.tolist()) != list(range(10))
    # A uniform draw of 200 of 2000 indices has mean 1000 with a standard deviation of about 40.
    assert 800 < top_200.mean() < 1200


def test_nan_scores_are_not_ranked():
    scores = torch.arange(6, dtype=torch.float32).repeat(2, 1)  # (2, 6)
    scores[0, 5] = torch.nan
    scores[1] = torch.nan
    target = csr_of(np.array([[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1]], dtype=bool))

    result = evaluate_ranking(lambda users: scores[users], target=target, ks=(1, 6))

    assert result.top_items[0].tolist() == [4, 3, 2, 1, 0, -1]
    assert result.top_items[1].tolist() == [-1] * 6
    assert result.per_user["hit_rate@6"].tolist() == [0.0, 0.0]


def test_scorer_tensor_is_not_modified():
    popularity = torch.arange(5, 0, -1, dtype=torch.float32)  # (5,) a scorer's own state
    scorer = lambda users: popularity.expand(len(users), -1)  # noqa: E731
    known = csr_of(np.array([[1, 0, 0, 0, 0]], dtype=bool))

    top = top_k_items(scorer, np.array([0]), 2, n_items=5, exclude=known)

    assert top.tolist() == [[1, 2]]
    assert popularity.tolist() == [5.0, 4.0, 3.0, 2.0, 1.0]
