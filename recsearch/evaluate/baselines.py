"""Non-neural baselines, scored by the same evaluator as the two-tower model.

Each baseline follows the estimator pattern: ``fit(user_items)`` learns from a
user-by-item matrix (users are rows) and returns the baseline; ``score_users(users,
user_items)`` scores every item for the given users from their rows of ``user_items``
(the training matrix, or training plus validation when ranking for the test split).
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch

from recsearch.data.load import CsrMatrix
from recsearch.errors import InputError

logger = logging.getLogger(__name__)


def to_scipy(matrix: CsrMatrix, *, binary: bool = True) -> sp.csr_matrix:
    """Return a SciPy CSR copy of ``matrix``; with ``binary`` every stored value becomes 1."""
    data = np.ones_like(matrix.data) if binary else matrix.data
    result = sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape, dtype=np.float32)
    result.sum_duplicates()
    if binary:
        result.data[:] = 1.0
    return result


class Recommender(Protocol):
    name: str

    def fit(self, user_items: CsrMatrix) -> "Recommender": ...

    def score_users(self, users: np.ndarray, user_items: CsrMatrix) -> torch.Tensor: ...


class MostPopular:
    """Scores every item by the number of training users who interacted with it."""

    name = "most_popular"

    def fit(self, user_items: CsrMatrix) -> "MostPopular":
        counts = np.asarray(to_scipy(user_items).sum(axis=0)).ravel()
        self.item_popularity_ = torch.as_tensor(counts, dtype=torch.float32)  # (n_items,)
        return self

    def score_users(self, users: np.ndarray, user_items: CsrMatrix) -> torch.Tensor:
        return self.item_popularity_.unsqueeze(0).expand(users.shape[0], -1).clone()  # (B, n_items)


class ItemKNN:
    """Item-based nearest neighbours on binary interactions, cosine similarity.

    Each item keeps its ``n_neighbours`` most similar items; a user's score for an item
    is the sum of its similarities to the items in the user's row.
    """

    name = "item_knn"

    def __init__(self, *, n_neighbours: int = 100, shrink: float = 0.0, block_size: int = 1024) -> None:
        if n_neighbours < 1:
            raise InputError(f"n_neighbours must be at least 1, got {n_neighbours}")
        if shrink < 0:
            raise InputError(f"shrink must be at least 0, got {shrink}")
        self.n_neighbours = n_neighbours
        self.shrink = shrink
        self.block_size = block_size

    def fit(self, user_items: CsrMatrix) -> "ItemKNN":
        item_users = to_scipy(user_items).T.tocsr()  # (n_items, n_users)
        n_items = item_users.shape[0]
        norms = np.sqrt(np.asarray(item_users.sum(axis=1)).ravel())  # (n_items,)
        keep = min(self.n_neighbours, max(n_items - 1, 1))

        rows, cols, values = [], [], []
        for start in range(0, n_items, self.block_size):
            stop = min(start + self.block_size, n_items)
            overlap = (item_users[start:stop] @ item_users.T).toarray()  # (b, n_items) co-occurrence
            similarity = overlap / (np.outer(norms[start:stop], norms) + self.shrink + 1e-12)
            similarity[np.arange(stop - start), np.arange(start, stop)] = 0.0
            neighbours = np.argpartition(-similarity, keep - 1, axis=1)[:, :keep]  # (b, keep)
            rows.append(np.repeat(np.arange(start, stop), keep))
            cols.append(neighbours.ravel())
            values.append(np.take_along_axis(similarity, neighbours, axis=1).ravel())
        # similarity_[i, j]: how much an interaction with item i adds to item j's score.
        self.similarity_ = sp.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items)
        ).astype(np.float32)
        return self

    def score_users(self, users: np.ndarray, user_items: CsrMatrix) -> torch.Tensor:
        rows = to_scipy(user_items)[users]
        return torch.as_tensor((rows @ self.similarity_).toarray())  # (B, n_items)


class EASE:
    """Embarrassingly shallow autoencoder (Steck, WWW 2019): a closed-form item-item model.

    B = I - P / diag(P) with P = (X^T X + lambda I)^-1 and a zero diagonal. The Gram
    matrix is decomposed once, so trying several lambdas costs one matrix product each.
    """

    name = "ease"

    def __init__(self, *, l2: float = 500.0, max_items: int = 12_000) -> None:
        if l2 <= 0:
            raise InputError(f"l2 must be positive, got {l2}")
        self.l2 = l2
        self.max_items = max_items
        self._eigen: tuple[torch.Tensor, torch.Tensor] | None = None

    def fit(self, user_items: CsrMatrix) -> "EASE":
        n_items = user_items.shape[1]
        if n_items > self.max_items:
            raise InputError(
                f"EASE needs a dense {n_items} x {n_items} matrix, above max_items={self.max_items}; "
                "skip EASE on this catalogue or raise max_items if memory allows"
            )
        matrix = to_scipy(user_items)
        gram = torch.as_tensor((matrix.T @ matrix).toarray(), dtype=torch.float64)  # (I, I)
        eigenvalues, eigenvectors = torch.linalg.eigh(gram)
        self._eigen = (eigenvalues.clamp_min(0.0), eigenvectors)
        return self.set_l2(self.l2)

    def set_l2(self, l2: float) -> "EASE":
        """Recompute the item-item weights for another regularisation, reusing the decomposition."""
        assert self._eigen is not None, "call fit first"
        eigenvalues, eigenvectors = self._eigen
        inverse = (eigenvectors / (eigenvalues + l2)) @ eigenvectors.T  # (I, I) = (G + l2 I)^-1
        weights = -inverse / torch.diagonal(inverse).unsqueeze(0)
        weights.fill_diagonal_(0.0)
        self.l2 = l2
        self.item_weights_ = weights.float()
        return self

    def score_users(self, users: np.ndarray, user_items: CsrMatrix) -> torch.Tensor:
        rows = torch.as_tensor(to_scipy(user_items)[users].toarray())  # (B, I)
        return rows @ self.item_weights_


class ImplicitALS:
    """Implicit-feedback alternating least squares (Hu et al., ICDM 2008) from the ``implicit`` package."""

    name = "ials"

    def __init__(
        self, *, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0, iterations: int = 15, seed: int = 0
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed

    @staticmethod
    def is_available() -> bool:
        try:
            import implicit  # noqa: F401
        except ImportError:
            return False
        return True

    def fit(self, user_items: CsrMatrix) -> "ImplicitALS":
        try:
            from implicit.cpu.als import AlternatingLeastSquares
            from threadpoolctl import threadpool_limits
        except ImportError as exc:
            raise InputError("the iALS baseline needs the optional package: pip install 'recsearch[baselines]'") from exc

        # implicit parallelises itself; a threaded BLAS underneath would oversubscribe the cores.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
            )
            model.fit(to_scipy(user_items), show_progress=False)
        self.user_factors_ = torch.as_tensor(np.asarray(model.user_factors))  # (n_users, F)
        self.item_factors_ = torch.as_tensor(np.asarray(model.item_factors))  # (n_items, F)
        return self

    def score_users(self, users: np.ndarray, user_items: CsrMatrix) -> torch.Tensor:
        # NOTE: user factors come from the fitted matrix only; validation items passed in
        # user_items for the test ranking are not folded in.
        return self.user_factors_[torch.as_tensor(users)] @ self.item_factors_.T  # (B, n_items)
