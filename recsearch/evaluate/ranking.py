"""Full-ranking evaluation: score every item for each user, drop the user's known items, take the top k.

This is the one evaluator of the product: training validation, search, the report and
the benchmarks all call ``evaluate_ranking``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recsearch.data.load import CsrMatrix, Interactions
from recsearch.evaluate.metrics import METRIC_FUNCTIONS, catalogue_coverage

logger = logging.getLogger(__name__)

# A scorer maps user indices (B,) to scores of every item (B, n_items); higher is better.
Scorer = Callable[[np.ndarray], torch.Tensor]

DEFAULT_KS = (10, 20, 50)
_SCORE_BUDGET = 1 << 26  # float32 scores held at once per batch (256 MiB)
_TIE_BREAK_SEED = 0  # fixed, so that equal scores are ordered the same way in every run


@dataclass(frozen=True)
class RankingResult:
    """Per-user metrics of one full-ranking evaluation, with the top items they came from."""

    users: np.ndarray  # (U,) evaluated user indices
    top_items: np.ndarray  # (U, max k) item indices, best first; -1 where fewer items remained
    n_relevant: np.ndarray  # (U,) relevant items per user
    per_user: dict[str, np.ndarray]  # "ndcg@10" -> (U,) values
    ks: tuple[int, ...]
    n_items: int

    def summary(self) -> dict[str, float]:
        """Return each metric averaged over users, plus catalogue coverage at each k."""
        values = {name: float(array.mean()) if array.size else 0.0 for name, array in self.per_user.items()}
        for k in self.ks:
            values[f"coverage@{k}"] = catalogue_coverage(self.top_items, self.n_items, k)
        return values

    def subset(self, mask: np.ndarray) -> "RankingResult":
        """Return the result restricted to the users where ``mask`` (U,) is true."""
        return RankingResult(
            users=self.users[mask],
            top_items=self.top_items[mask],
            n_relevant=self.n_relevant[mask],
            per_user={name: array[mask] for name, array in self.per_user.items()},
            ks=self.ks,
            n_items=self.n_items,
        )


def csr_row_entries(matrix: CsrMatrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (position in ``rows``, column) of every stored entry of the given rows, without a loop."""
    starts = matrix.indptr[rows]
    counts = matrix.indptr[rows + 1] - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    position = np.repeat(np.arange(rows.shape[0]), counts)
    # Index of each entry: its row's start plus its offset within the row.
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return position, matrix.indices[starts[position] + offsets].astype(np.int64)


def user_items_of(n_users: int, n_items: int, *tables: Interactions) -> CsrMatrix:
    """Return the user-by-item matrix of several interaction tables together."""
    user = np.concatenate([table.user for table in tables])
    item = np.concatenate([table.item for table in tables])
    weight = np.concatenate([table.weight for table in tables])
    return CsrMatrix.from_pairs(user, item, weight, n_users, n_items)


def default_batch_size(n_items: int) -> int:
    """Return how many users to score at once so one batch of scores stays within 256 MiB."""
    return int(max(1, min(4096, _SCORE_BUDGET // max(n_items, 1))))


# Catalogues up to this size are ranked with a full stable sort, which fixes the tie order.
# Larger ones use torch.topk, which is cheaper there because it does not sort everything.
_STABLE_SORT_MAX_ITEMS = 100_000


def tie_break_order(n_items: int) -> torch.Tensor:
    """Return a fixed random permutation of the items (n_items,), which orders items of equal score.

    ``torch.topk`` leaves the order of equal scores to its implementation, which often
    favours low indices. Ingestion numbers items most frequent first, so that order would
    credit a model with constant or tied scores with the popularity ranking.
    """
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(_TIE_BREAK_SEED))


def top_k_items(
    scorer: Scorer,
    users: np.ndarray,
    k: int,
    *,
    n_items: int,
    exclude: CsrMatrix | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Return the (U, k) best items of each user, never one of ``exclude``'s items; -1 fills empty slots.

    Items with equal scores are ordered by ``tie_break_order``, and items scored NaN are
    never returned. The scorer's tensors are not modified.
    """
    batch_size = batch_size or default_batch_size(n_items)
    k_kept = min(k, n_items)
    result = np.full((users.shape[0], k), -1, dtype=np.int64)
    order = tie_break_order(n_items)  # (n_items,) column j of the permuted scores is item order[j]
    column_of = torch.empty_like(order)
    column_of[order] = torch.arange(n_items)  # (n_items,) permuted column of each item

    for start in range(0, users.shape[0], batch_size):
        batch = users[start : start + batch_size]
        scores = scorer(batch)  # (B, n_items)
        if scores.shape != (batch.shape[0], n_items):
            raise ValueError(f"scorer returned shape {tuple(scores.shape)}, expected {(batch.shape[0], n_items)}")
        order, column_of = order.to(scores.device), column_of.to(scores.device)
        scores = scores.float()[:, order]  # (B, n_items) a permuted copy

        not_a_number = torch.isnan(scores)
        if bool(not_a_number.any()):
            logger.warning(
                "the scorer returned NaN for %d of %d scores; those items are not ranked",
                int(not_a_number.sum()), not_a_number.numel(),
            )
            scores.masked_fill_(not_a_number, -torch.inf)
        if exclude is not None:
            position, column = csr_row_entries(exclude, batch)
            position = torch.as_tensor(position, device=scores.device)
            column = column_of[torch.as_tensor(column, device=scores.device)]
            scores[position, column] = -torch.inf

        if n_items <= _STABLE_SORT_MAX_ITEMS:
            # A stable sort keeps equal scores in permuted-column order, so ties resolve the
            # same way whatever k is; torch.topk promises no order among ties.
            top_scores, top_columns = torch.sort(scores, dim=1, descending=True, stable=True)
            top_scores, top_columns = top_scores[:, :k_kept], top_columns[:, :k_kept]  # (B, k)
        else:
            # NOTE: above this size ties fall to torch.topk's order, which may depend on k.
            top_scores, top_columns = torch.topk(scores, k_kept, dim=1)  # (B, k)
        top = torch.where(torch.isneginf(top_scores), torch.full_like(top_columns, -1), order[top_columns])
        result[start : start + batch.shape[0], :k_kept] = top.cpu().numpy()
    return result


def relevance_of(top_items: np.ndarray, users: np.ndarray, target: CsrMatrix) -> np.ndarray:
    """Return (U, K) booleans: whether each recommended item is in the user's ``target`` row."""
    position, column = csr_row_entries(target, users)
    # Encode (user position, item) pairs as one int64 key and test membership in bulk.
    n_columns = np.int64(target.shape[1] + 1)
    target_keys = position.astype(np.int64) * n_columns + column
    top_keys = np.arange(users.shape[0], dtype=np.int64)[:, None] * n_columns + top_items
    return np.isin(top_keys, target_keys) & (top_items >= 0)


def evaluate_ranking(
    scorer: Scorer,
    *,
    target: CsrMatrix,
    exclude: CsrMatrix | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    users: np.ndarray | None = None,
    batch_size: int | None = None,
) -> RankingResult:
    """Rank the whole catalogue for every user with relevant items in ``target``.

    ``exclude`` contains the items each user already interacted with (their training
    items, plus validation items when evaluating on test); they are never ranked.
    Relevance is binary: an item is relevant when it is in the user's ``target`` row.
    """
    ks = tuple(sorted(set(int(k) for k in ks)))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    n_items = target.shape[1]
    counts = np.diff(target.indptr)
    if users is None:
        users = np.flatnonzero(counts > 0)
    else:
        users = users[counts[users] > 0]

    started = time.perf_counter()
    top_items = top_k_items(scorer, users, ks[-1], n_items=n_items, exclude=exclude, batch_size=batch_size)
    hits = relevance_of(top_items, users, target)
    n_relevant = counts[users].astype(np.int64)

    per_user = {}
    for name, function in METRIC_FUNCTIONS.items():
        for k in ks:
            per_user[f"{name}@{k}"] = function(hits, n_relevant, k) if users.size else np.zeros(0)
    logger.debug("ranked %d items for %d users in %.2f s", n_items, users.shape[0], time.perf_counter() - started)
    return RankingResult(
        users=users, top_items=top_items, n_relevant=n_relevant, per_user=per_user, ks=ks, n_items=n_items
    )
