import numpy as np
import pytest
import torch

from recsearch.data.load import CsrMatrix
from recsearch.evaluate import (
    evaluate_ranking,
    evaluate_sampled_negatives,
    head_items,
    metrics_by_history_length,
    metrics_by_item_group,
    top_k_items,
)


def csr(rows: list[list[int]], n_items: int) -> CsrMatrix:
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows]).astype(np.int32)
    items = np.array([i for r in rows for i in r], dtype=np.int32)
    return CsrMatrix.from_pairs(users, items, np.ones(items.shape[0], np.float32), len(rows), n_items)


def fixed_scorer(scores: np.ndarray):
    table = torch.as_tensor(scores, dtype=torch.float32)
    return lambda users: table[torch.as_tensor(users)].clone()


def test_known_items_are_never_ranked():
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    top = top_k_items(fixed_scorer(scores), np.array([0]), 3, n_items=5, exclude=csr([[0, 2]], 5))
    assert top.tolist() == [[1, 3, 4]]


def test_short_catalogue_pads_with_minus_one():
    top = top_k_items(fixed_scorer(np.array([[1.0, 2.0, 3.0]])), np.array([0]), 3, n_items=3, exclude=csr([[2]], 3))
    assert top.tolist() == [[1, 0, -1]]


def test_evaluate_ranking_hand_computed():
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    known = csr([[0], [3]], 4)  # user 0 saw item 0, user 1 saw item 3
    target = csr([[2], [0]], 4)  # relevant: user 0 -> item 2, user 1 -> item 0
    result = evaluate_ranking(fixed_scorer(scores), target=target, exclude=known, ks=(1, 2))
    # User 0 ranking without item 0: [1, 2, 3] -> hit at rank 2. User 1: [2, 1, 0] -> hit at rank 3.
    assert result.per_user["hit_rate@1"].tolist() == [0.0, 0.0]
    assert result.per_user["hit_rate@2"].tolist() == [1.0, 0.0]
    assert result.per_user["mrr@2"] == pytest.approx([0.5, 0.0])
    assert result.summary()["coverage@1"] == pytest.approx(0.5)  # items 1 and 2


def test_users_without_targets_are_skipped():
    target = csr([[1], [], [0]], 3)
    result = evaluate_ranking(fixed_scorer(np.ones((3, 3))), target=target, ks=(1,))
    assert result.users.tolist() == [0, 2]


def test_batched_equals_one_batch():
    rng = np.random.default_rng(0)
    scores = rng.random((50, 30))
    known = csr([rng.choice(30, 5, replace=False).tolist() for _ in range(50)], 30)
    target = csr([rng.choice(30, 3, replace=False).tolist() for _ in range(50)], 30)
    whole = evaluate_ranking(fixed_scorer(scores), target=target, exclude=known, ks=(5, 10))
    batched = evaluate_ranking(fixed_scorer(scores), target=target, exclude=known, ks=(5, 10), batch_size=7)
    assert np.array_equal(whole.top_items, batched.top_items)
    for name, values in whole.per_user.items():
        assert np.allclose(values, batched.per_user[name]), name


def test_sampled_protocol_perfect_and_worst_scorer():
    n_items = 300
    target = csr([[0], [1]], n_items)
    interacted = csr([[0, 5], [1, 6]], n_items)
    best = np.full((2, n_items), -1.0)
    best[0, 0] = best[1, 1] = 1.0
    perfect = evaluate_sampled_negatives(fixed_scorer(best), target=target, interacted=interacted, ks=(1,))
    assert perfect["sampled_hit_rate@1"] == 1.0
    assert perfect["sampled_ndcg@1"] == 1.0
    worst = evaluate_sampled_negatives(fixed_scorer(-best), target=target, interacted=interacted, ks=(10,))
    assert worst["sampled_hit_rate@10"] == 0.0


def test_sampled_negatives_avoid_interacted_items():
    from recsearch.evaluate.sampled import sample_unseen_items

    interacted = csr([list(range(0, 9))], 10)  # only item 9 is unseen
    negatives = sample_unseen_items(np.array([0]), interacted, 20, np.random.default_rng(0))
    assert set(negatives.ravel().tolist()) == {9}


def test_history_length_groups():
    scores = np.tile(np.arange(6, dtype=float), (3, 1))
    known = csr([[0], [0, 1, 2, 3, 4, 5][:2], [1, 2, 3]], 6)
    target = csr([[5], [5], [5]], 6)
    result = evaluate_ranking(fixed_scorer(scores), target=target, exclude=known, ks=(1,))
    groups = metrics_by_history_length(result, known, edges=(1, 2))
    assert groups["1-1"]["n_users"] == 1
    assert groups["2-2"]["n_users"] == 1
    assert groups[">2"]["n_users"] == 1
    assert groups["1-1"]["hit_rate@1"] == 1.0


def test_head_tail_recall():
    frequency = np.array([10.0, 9.0, 1.0, 1.0, 1.0])
    is_head = head_items(frequency, head_share=0.4)
    assert is_head.tolist() == [True, True, False, False, False]
    scores = np.array([[5.0, 1.0, 4.0, 0.0, 0.0]])
    target = csr([[0, 1, 2, 3]], 5)  # two head and two tail items relevant
    result = evaluate_ranking(fixed_scorer(scores), target=target, ks=(2,))
    groups = metrics_by_item_group(result, target, is_head)
    # Top 2 = items 0 (head) and 2 (tail): one of two relevant items found in each group.
    assert groups["head"]["recall@2"] == pytest.approx(0.5)
    assert groups["tail"]["recall@2"] == pytest.approx(0.5)
    assert groups["tail"]["share@2"] == pytest.approx(0.5)
