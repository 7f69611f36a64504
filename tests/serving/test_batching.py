"""RecommendBatch returns for each query the results that the query gets when sent alone."""

import numpy as np
import pytest

from recsearch import model_dir as md
from recsearch.export import IndexConfig
from serving.model import AttributeFilter, Query, ServingModel
from tests.serving.helpers import write_vector_model


def mixed_queries(arrays: md.ModelArrays) -> list[Query]:
    """Known users, an unknown one, a filter, seen items kept, long exclusion lists and several k."""
    users = arrays.user_ids.tolist()
    items = arrays.item_ids.tolist()
    category = arrays.attributes["category"][1][1]
    queries = [Query(users[i], k) for i, k in zip(range(12), (1, 5, 10, 3, 10, 7, 10, 2, 10, 10, 4, 10))]
    queries += [
        Query("nobody", 5),
        Query(users[1], 5, include_seen=True),
        Query(users[2], 5, filters=(AttributeFilter("category", allowed_values=(category,)),)),
        Query(users[3], 5, exclude_item_ids=tuple(items[:10])),
        Query(users[4], 5, exclude_item_ids=tuple(items[:300])),
    ]
    return queries


def assert_same(batched, alone) -> None:
    assert batched.item_ids == alone.item_ids
    assert batched.fallback == alone.fallback
    np.testing.assert_allclose(batched.scores, alone.scores, rtol=1e-5, atol=1e-6)


def test_batch_matches_single_calls(mf_model_dir):
    model = ServingModel.load(mf_model_dir)
    queries = mixed_queries(model.arrays)
    batched = model.recommend_many(queries)
    for query, result in zip(queries, batched):
        assert_same(result, model.recommend(query))
    assert len(batched[0].item_ids) == 1
    assert len(batched[2].item_ids) == 10


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_tied_scores_match_single_calls(kind, tmp_path):
    """Items with equal vectors, as hashed ids produce, rank as they do alone, whatever the other queries request."""
    rng = np.random.default_rng(3)
    item_vectors = np.repeat(rng.normal(size=(5, 8)).astype(np.float32), 40, axis=0)  # 5 vectors, 40 items each
    user_vectors = rng.normal(size=(6, 8)).astype(np.float32)
    out = tmp_path / "tied"
    write_vector_model(out, item_vectors, user_vectors, IndexConfig(kind=kind))
    model = ServingModel.load(out)
    users = model.arrays.user_ids.tolist()
    queries = [Query(users[0], 1), Query(users[1], 30), Query(users[2], 3, include_seen=True), Query(users[3], 100)]
    for query, result in zip(queries, model.recommend_many(queries)):
        assert_same(result, model.recommend(query))
