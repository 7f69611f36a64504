import math

import numpy as np
import pytest

from recsearch.evaluate.metrics import (
    catalogue_coverage,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)

# Two users, top-4 lists. User 0 has 3 relevant items, hits at ranks 1 and 3.
# User 1 has 1 relevant item, hit at rank 2.
HITS = np.array([[True, False, True, False], [False, True, False, False]])
N_RELEVANT = np.array([3, 1])


def test_recall_hand_computed():
    assert recall_at_k(HITS, N_RELEVANT, 4) == pytest.approx([2 / 3, 1.0])
    assert recall_at_k(HITS, N_RELEVANT, 1) == pytest.approx([1 / 3, 0.0])


def test_ndcg_ideal_uses_min_of_k_and_relevant():
    # User 0 at k=2: DCG = 1; ideal fills both slots: 1 + 1/log2(3).
    expected_user0 = 1.0 / (1.0 + 1.0 / math.log2(3))
    # User 1 at k=2: DCG = 1/log2(3); one relevant item, ideal DCG = 1.
    expected_user1 = 1.0 / math.log2(3)
    assert ndcg_at_k(HITS, N_RELEVANT, 2) == pytest.approx([expected_user0, expected_user1])


def test_ndcg_at_four():
    dcg = 1.0 + 1.0 / math.log2(4)
    ideal = 1.0 + 1.0 / math.log2(3) + 1.0 / math.log2(4)
    assert ndcg_at_k(HITS, N_RELEVANT, 4)[0] == pytest.approx(dcg / ideal)


def test_ndcg_perfect_ranking_is_one():
    hits = np.array([[True, True, False]])
    assert ndcg_at_k(hits, np.array([2]), 3) == pytest.approx([1.0])


def test_hit_rate_hand_computed():
    assert hit_rate_at_k(HITS, N_RELEVANT, 1) == pytest.approx([1.0, 0.0])
    assert hit_rate_at_k(HITS, N_RELEVANT, 2) == pytest.approx([1.0, 1.0])


def test_mrr_hand_computed():
    assert mrr_at_k(HITS, N_RELEVANT, 4) == pytest.approx([1.0, 0.5])
    assert mrr_at_k(HITS, N_RELEVANT, 1) == pytest.approx([1.0, 0.0])


def test_map_hand_computed():
    # User 0: precision@1 = 1, precision@3 = 2/3, divided by min(4, 3) = 3.
    # User 1: precision@2 = 1/2, divided by min(4, 1) = 1.
    assert map_at_k(HITS, N_RELEVANT, 4) == pytest.approx([(1.0 + 2 / 3) / 3, 0.5])


def test_map_divides_by_k_when_fewer_slots():
    # 3 relevant, k=2, both slots hit: (1 + 1) / min(2, 3) = 1.
    assert map_at_k(np.array([[True, True]]), np.array([3]), 2) == pytest.approx([1.0])


def test_metrics_without_hits_are_zero():
    hits = np.zeros((1, 3), dtype=bool)
    for function in (recall_at_k, ndcg_at_k, hit_rate_at_k, mrr_at_k, map_at_k):
        assert function(hits, np.array([2]), 3) == pytest.approx([0.0])


def test_k_beyond_ranking_raises():
    with pytest.raises(ValueError, match="k must be within"):
        recall_at_k(HITS, N_RELEVANT, 5)


def test_user_without_relevant_items_raises():
    with pytest.raises(ValueError, match="at least one relevant item"):
        ndcg_at_k(HITS, np.array([3, 0]), 2)


def test_coverage_counts_distinct_items():
    top = np.array([[0, 1, 2], [1, 2, -1]])
    assert catalogue_coverage(top, 10, 2) == pytest.approx(0.3)  # items 0, 1, 2
    assert catalogue_coverage(top, 10, 1) == pytest.approx(0.2)  # items 0, 1
    assert catalogue_coverage(top, 10, 3) == pytest.approx(0.3)
