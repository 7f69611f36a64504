from __future__ import annotations

import numpy as np
import pytest

from recsearch.report.bootstrap import bootstrap_means, percentile_interval


def test_constant_values_give_zero_width():
    means = bootstrap_means(np.full((50, 2), 0.25), n_resamples=100, seed=0)
    assert means.shape == (100, 2)
    assert np.allclose(means, 0.25)


def test_same_seed_same_resamples():
    values = np.random.default_rng(1).random((80, 3))
    first = bootstrap_means(values, n_resamples=150, seed=7)
    second = bootstrap_means(values, n_resamples=150, seed=7)
    assert np.array_equal(first, second)


def test_identical_columns_are_paired():
    column = np.random.default_rng(2).random(60)
    means = bootstrap_means(np.column_stack([column, column]), n_resamples=200, seed=0)
    assert np.array_equal(means[:, 0], means[:, 1])


def test_interval_covers_known_mean():
    # 0/1 values with mean 0.3 over 2000 users: the standard error is about 0.01.
    values = (np.arange(2000) % 10 < 3).astype(float)[:, None]
    estimate = percentile_interval(values.mean(), bootstrap_means(values, n_resamples=500, seed=0)[:, 0])
    assert estimate.mean == pytest.approx(0.3)
    assert 0.26 < estimate.lower < 0.3 < estimate.upper < 0.34


def test_blocks_match_one_draw_per_resample():
    # More resamples than one block holds: every row must still be a mean of real draws.
    values = np.arange(10, dtype=float)[:, None]
    means = bootstrap_means(values, n_resamples=130, seed=0)[:, 0]
    assert np.all((means >= 0) & (means <= 9))
    assert len(np.unique(means)) > 10


@pytest.mark.parametrize("n_resamples", [0, -1])
def test_invalid_resamples_rejected(n_resamples):
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_means(np.ones((3, 1)), n_resamples=n_resamples)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5])
def test_invalid_confidence_rejected(confidence):
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(0.5, np.ones(10), confidence)
