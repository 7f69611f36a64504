import numpy as np
import pytest
import torch

from recsearch.data.load import CsrMatrix
from recsearch.evaluate import EASE, ImplicitALS, ItemKNN, MostPopular
from recsearch.evaluate.baselines import to_scipy


def random_user_items(n_users: int = 40, n_items: int = 25, seed: int = 0) -> CsrMatrix:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < 0.2
    users, items = np.nonzero(mask)
    return CsrMatrix.from_pairs(users.astype(np.int32), items.astype(np.int32), np.ones(users.size, np.float32), n_users, n_items)


def test_most_popular_scores_user_counts():
    matrix = random_user_items()
    scores = MostPopular().fit(matrix).score_users(np.array([0, 1]), matrix)
    expected = to_scipy(matrix).toarray().sum(axis=0)
    assert torch.allclose(scores[0], torch.as_tensor(expected, dtype=torch.float32))
    assert torch.equal(scores[0], scores[1])


def test_ease_matches_direct_inverse():
    matrix = random_user_items()
    l2 = 5.0
    model = EASE(l2=l2).fit(matrix)
    x = to_scipy(matrix).toarray().astype(np.float64)
    inverse = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    expected = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(model.item_weights_.numpy(), expected, atol=1e-4)


def test_ease_set_l2_equals_refit():
    matrix = random_user_items()
    tuned = EASE(l2=1.0).fit(matrix).set_l2(20.0)
    direct = EASE(l2=20.0).fit(matrix)
    assert torch.allclose(tuned.item_weights_, direct.item_weights_, atol=1e-5)


def test_ease_rejects_large_catalogue():
    from recsearch.errors import InputError

    with pytest.raises(InputError, match="max_items"):
        EASE(max_items=10).fit(random_user_items())


def test_item_knn_cosine_by_hand():
    # Items 0 and 1 share both users; item 2 shares one user with item 0.
    users = np.array([0, 0, 0, 1, 1], dtype=np.int32)
    items = np.array([0, 1, 2, 0, 1], dtype=np.int32)
    matrix = CsrMatrix.from_pairs(users, items, np.ones(5, np.float32), 2, 3)
    model = ItemKNN(n_neighbours=2).fit(matrix)
    similarity = model.similarity_.toarray()
    assert similarity[0, 1] == pytest.approx(1.0)  # 2 / (sqrt(2) * sqrt(2))
    assert similarity[0, 2] == pytest.approx(1 / np.sqrt(2))  # 1 / (sqrt(2) * 1)
    assert similarity[0, 0] == 0.0


@pytest.mark.skipif(not ImplicitALS.is_available(), reason="the optional 'implicit' package is not installed")
def test_ials_scores_have_catalogue_shape():
    matrix = random_user_items()
    model = ImplicitALS(factors=8, iterations=2).fit(matrix)
    assert model.score_users(np.array([0, 3]), matrix).shape == (2, 25)
