"""Metrics per segment: users grouped by history length, items split into head and tail."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsearch.data.load import CsrMatrix
from recsearch.evaluate.ranking import RankingResult, csr_row_entries, relevance_of

DEFAULT_HISTORY_EDGES = (5, 20, 50, 200)  # upper bounds (inclusive) of the user groups
DEFAULT_HEAD_SHARE = 0.2  # most popular share of the catalogue counted as the head


def history_length_labels(history_length: np.ndarray, edges: Sequence[int] = DEFAULT_HISTORY_EDGES) -> np.ndarray:
    """Label each user by history length: "1-5", "6-20", ..., and ">200" above the last edge."""
    bounds = [0, *edges]
    names = [f"{low + 1}-{high}" for low, high in zip(bounds[:-1], bounds[1:])] + [f">{edges[-1]}"]
    group = np.searchsorted(np.asarray(edges), history_length, side="left")
    return np.asarray(names, dtype=object)[group]


def metrics_by_user_group(result: RankingResult, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Average the per-user metrics within each group; ``labels`` has one entry per evaluated user.

    Each group also reports ``n_users``. Coverage is not split by group.
    """
    groups = {}
    for label in sorted(set(labels.tolist()), key=_group_order):
        mask = labels == label
        subset = result.subset(mask)
        values = {name: float(array.mean()) for name, array in subset.per_user.items()}
        values["n_users"] = int(mask.sum())
        groups[label] = values
    return groups


def _group_order(label: str) -> int:
    return int(label.lstrip(">").split("-")[0]) + (1 if label.startswith(">") else 0)


def metrics_by_history_length(
    result: RankingResult, known: CsrMatrix, edges: Sequence[int] = DEFAULT_HISTORY_EDGES
) -> dict[str, dict[str, float]]:
    """Average the metrics over users grouped by how many known items they have."""
    history_length = np.diff(known.indptr)[result.users]
    return metrics_by_user_group(result, history_length_labels(history_length, edges))


def head_items(item_frequency: np.ndarray, head_share: float = DEFAULT_HEAD_SHARE) -> np.ndarray:
    """Return (n_items,) booleans marking the ``head_share`` most frequent items as the head."""
    if not 0.0 < head_share < 1.0:
        raise ValueError(f"head_share must be within (0, 1), got {head_share}")
    n_head = int(np.ceil(head_share * item_frequency.shape[0]))
    is_head = np.zeros(item_frequency.shape[0], dtype=bool)
    is_head[np.argsort(-item_frequency, kind="stable")[:n_head]] = True
    return is_head


def metrics_by_item_group(result: RankingResult, target: CsrMatrix, is_head: np.ndarray) -> dict[str, dict[str, float]]:
    """Recall@k within head and tail items, and the tail share of the recommendations.

    Recall of a group pools all (user, relevant item) pairs of the group: found pairs
    over relevant pairs. ``share@k`` is the group's share of all recommended slots.
    """
    hits = relevance_of(result.top_items, result.users, target)  # (U, K)
    _, relevant_items = csr_row_entries(target, result.users)
    recommended_head = np.where(result.top_items >= 0, is_head[np.maximum(result.top_items, 0)], False)
    filled = result.top_items >= 0

    groups = {}
    for name, in_group in (("head", True), ("tail", False)):
        relevant = int((is_head[relevant_items] == in_group).sum())
        values: dict[str, float] = {"n_relevant": relevant}
        for k in result.ks:
            member = (recommended_head[:, :k] == in_group) & filled[:, :k]
            found = int((hits[:, :k] & member).sum())
            values[f"recall@{k}"] = found / relevant if relevant else 0.0
            values[f"share@{k}"] = float(member.sum() / max(filled[:, :k].sum(), 1))
        groups[name] = values
    return groups
