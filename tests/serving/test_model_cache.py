"""ServingModel's per-request shortcuts return the results of the plain computation."""

import numpy as np
import pytest

from recsearch import model_dir as md
from serving import model as serving_model
from serving.model import AttributeFilter, Query, RequestError, ServingModel


def test_filter_mask_cache_same_results(mf_model_dir):
    arrays = md.load_model_dir(mf_model_dir)
    values = arrays.attributes["category"][1][1:].tolist()
    model = ServingModel.load(mf_model_dir)
    user_id = arrays.user_ids[3]
    # More distinct filters than the cache holds, each requested twice, so masks are evicted and rebuilt.
    filter_sets = [(AttributeFilter("category", excluded_values=(value,)),) for value in values]
    filter_sets += [(AttributeFilter("category", allowed_values=(value,)),) for value in values]
    assert len(filter_sets) > serving_model._FILTER_MASKS

    first = [model.recommend(Query(user_id, 8, filters=filters)) for filters in filter_sets]
    again = [model.recommend(Query(user_id, 8, filters=filters)) for filters in reversed(filter_sets)][::-1]
    for filters, a, b in zip(filter_sets, first, again):
        assert a.item_ids == b.item_ids
        assert np.array_equal(model._filter_mask(filters), model._allowed_items(filters))
    assert len(model._filter_masks) <= serving_model._FILTER_MASKS


def test_invalid_filter_rejected_twice(mf_model_dir):
    model = ServingModel.load(mf_model_dir)
    filters = (AttributeFilter("colour", allowed_values=("red",)),)
    for _ in range(2):
        with pytest.raises(RequestError, match="unknown"):
            model.recommend(Query("u", 5, filters=filters))


def test_pairwise_exclusion_equals_isin():
    rng = np.random.default_rng(0)
    candidates = np.append(rng.integers(0, 500, 300), -1)  # FAISS marks missing results with -1
    for n_banned in (1, 20, 200):  # below and above the pairwise limit
        banned = rng.integers(0, 500, n_banned).astype(np.int32)
        assert np.array_equal(serving_model._is_banned(candidates, banned), np.isin(candidates, banned))
