"""The sampled-negative protocol of the NCF paper (He et al., WWW 2017), for comparison with older work.

Each held-out (user, item) pair is ranked against ``n_negatives`` items the user never
interacted with, drawn uniformly. Sampled metrics overstate quality and can reorder
models (Krichene and Rendle, KDD 2020), so full ranking (``evaluate_ranking``) is the
default everywhere and this protocol runs only when asked for by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recsearch.data.load import CsrMatrix
from recsearch.evaluate.ranking import Scorer, csr_row_entries

NCF_NEGATIVES = 100


def sample_unseen_items(
    users: np.ndarray, interacted: CsrMatrix, n_negatives: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw (P, n_negatives) items per row of ``users`` outside that user's ``interacted`` row.

    Draws that hit an interacted item are redrawn, all at once, until none is left.
    """
    n_items = interacted.shape[1]
    position, column = csr_row_entries(interacted, users)
    n_columns = np.int64(n_items)
    seen_keys = np.unique(position.astype(np.int64) * n_columns + column)
    if (np.diff(interacted.indptr)[users] >= n_items).any():
        raise ValueError("a user has interacted with every item; no negatives can be drawn")

    row_keys = np.arange(users.shape[0], dtype=np.int64)[:, None] * n_columns
    negatives = rng.integers(0, n_items, (users.shape[0], n_negatives))
    redraw = np.isin(row_keys + negatives, seen_keys)
    while redraw.any():
        negatives[redraw] = rng.integers(0, n_items, int(redraw.sum()))
        redraw = np.isin(row_keys + negatives, seen_keys)
    return negatives


def evaluate_sampled_negatives(
    scorer: Scorer,
    *,
    target: CsrMatrix,
    interacted: CsrMatrix,
    ks: Sequence[int] = (10,),
    n_negatives: int = NCF_NEGATIVES,
    seed: int = 0,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Return HitRate@k and NDCG@k averaged over every target pair, each ranked among sampled negatives.

    ``interacted`` must hold every item the user interacted with in any split, so that
    no negative is in fact relevant. Ties with a negative count against the target.
    """
    users_with_target = np.flatnonzero(np.diff(target.indptr) > 0)
    position, items = csr_row_entries(target, users_with_target)
    pair_users = users_with_target[position]  # (P,)
    rng = np.random.default_rng(seed)

    ranks = np.empty(pair_users.shape[0], dtype=np.int64)
    for start in range(0, pair_users.shape[0], batch_size):
        users = pair_users[start : start + batch_size]
        negatives = sample_unseen_items(users, interacted, n_negatives, rng)  # (b, n_negatives)
        candidates = np.concatenate([items[start : start + batch_size, None], negatives], axis=1)
        scores = scorer(users).float()  # (b, n_items)
        chosen = torch.gather(scores, 1, torch.as_tensor(candidates, device=scores.device))  # (b, 1 + n)
        ranks[start : start + users.shape[0]] = (chosen[:, 1:] >= chosen[:, :1]).sum(dim=1).cpu().numpy()

    result = {}
    for k in ks:
        inside = ranks < k
        result[f"sampled_hit_rate@{k}"] = float(inside.mean()) if ranks.size else 0.0
        result[f"sampled_ndcg@{k}"] = float(np.where(inside, 1.0 / np.log2(ranks + 2), 0.0).mean()) if ranks.size else 0.0
    return result
