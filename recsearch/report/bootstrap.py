"""Percentile bootstrap over users for mean ranking metrics, paired across models."""

from __future__ import annotations

import numpy as np

from recsearch.report.schema import MetricEstimate

DEFAULT_RESAMPLES = 1_000
DEFAULT_CONFIDENCE = 0.95
_RESAMPLES_PER_BLOCK = 64  # resamples whose user counts are held at once: (64, U) float32


def bootstrap_means(
    values: np.ndarray, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """Return the (n_resamples, M) column means of ``values`` (U, M) over users drawn with replacement.

    Each resample draws U users; the same draws serve every column, so columns that
    hold different models' values for the same users give paired resamples.
    """
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"values must be a (users, columns) array with at least one user, got shape {values.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    n_users = values.shape[0]
    rng = np.random.default_rng(seed)
    columns = values.astype(np.float64)
    means = np.empty((n_resamples, values.shape[1]))

    for start in range(0, n_resamples, _RESAMPLES_PER_BLOCK):
        n_block = min(_RESAMPLES_PER_BLOCK, n_resamples - start)
        counts = np.stack(
            [np.bincount(rng.integers(0, n_users, n_users), minlength=n_users) for _ in range(n_block)]
        )  # (n_block, U) times each user was drawn
        means[start : start + n_block] = counts @ columns / n_users
    return means


def percentile_interval(
    point: float, resampled: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> MetricEstimate:
    """Return ``point`` with the central ``confidence`` interval of its resampled values (R,)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(resampled, [tail, 1.0 - tail])
    return MetricEstimate(mean=float(point), lower=float(lower), upper=float(upper))
