"""The server on approximate indexes: exact inner products as scores and the recall the manifest records."""

import json
import shutil

import numpy as np
import pytest

from recsearch import model_dir as md
from recsearch.errors import ModelDirError
from recsearch.export import IndexConfig, recall_at_k
from recsearch.item_index import MIPS_TO_L2, MIPS_TO_L2_X8
from serving.model import ServingModel
from serving.server import BackgroundServer, ServerOptions
from tests.export.fixtures import clustered_vectors
from tests.serving.helpers import pb, stub_for, write_vector_model

DIM = 16
K = 10
N_USERS = 200

CONFIGS = {
    "ivfsq8": IndexConfig(exact_below=0),
    "ivfflat": IndexConfig(kind="ivfflat"),
    "hnsw": IndexConfig(kind="hnsw"),
    # IVF-PQ needs 39 * 256 items to train its codebooks.
    "ivfpq": IndexConfig(kind="ivfpq"),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def vector_model(request, tmp_path_factory):
    n_items = 10_000 if request.param == "ivfpq" else 3_000
    rng = np.random.default_rng(7)
    item_vectors = clustered_vectors(n_items, DIM, rng)
    user_vectors = clustered_vectors(N_USERS, DIM, rng)
    out = tmp_path_factory.mktemp("vector-models") / request.param
    write_vector_model(out, item_vectors, user_vectors, CONFIGS[request.param])
    return out


@pytest.fixture(scope="module")
def server(vector_model):
    running = BackgroundServer(ServerOptions(vector_model, port=0, reload_interval=0))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(server):
    channel, stub = stub_for(server.port)
    yield stub
    channel.close()


def exact_scores(arrays, users):
    scores = arrays.user_vectors[users] @ arrays.item_vectors.T  # (n_users, n_items)
    scores[:, 0] = -np.inf  # every user has seen item 0
    return scores


def test_manifest_records_chosen_index(vector_model):
    index = md.read_manifest(vector_model)["index"]
    assert index["kind"] == vector_model.name
    assert index["transform"] == {"ivfpq": None, "ivfsq8": MIPS_TO_L2_X8}.get(index["kind"], MIPS_TO_L2)
    assert index["recall_at_10"] >= 0.95
    assert set(index["search_latency_us"]) == {"p50", "p99"}
    assert index["tried"]


def test_server_scores_equal_dot_products(vector_model, stub):
    arrays = md.load_model_dir(vector_model)
    users = np.arange(50)
    expected = exact_scores(arrays, users)
    item_position = {item_id: i for i, item_id in enumerate(arrays.item_ids.tolist())}
    I = np.zeros((len(users), K), dtype=np.int64)
    for row, user in enumerate(users):
        response = stub.Recommend(pb.RecommendRequest(user_id=f"u{user}", k=K), timeout=10)
        I[row] = [item_position[item.item_id] for item in response.items]
        scores = np.array([item.score for item in response.items])
        np.testing.assert_allclose(scores, expected[row, I[row]], rtol=1e-5, atol=1e-4)
        assert (np.diff(scores) <= 0).all()
    I_exact = np.argsort(-expected, axis=1, kind="stable")[:, :K]
    assert recall_at_k(I, I_exact) >= 0.9


def test_large_k_returns_k_items(vector_model, stub):
    # More items than the tuned index's probed lists or visited nodes hold.
    arrays = md.load_model_dir(vector_model)
    k = 1_000
    expected = exact_scores(arrays, np.array([3]))[0]
    response = stub.Recommend(pb.RecommendRequest(user_id="u3", k=k), timeout=10)
    assert len(response.items) == k
    item_position = {item_id: i for i, item_id in enumerate(arrays.item_ids.tolist())}
    items = np.array([item_position[item.item_id] for item in response.items])
    np.testing.assert_allclose([item.score for item in response.items], expected[items], rtol=1e-5, atol=1e-4)
    batch_items, _ = ServingModel.load(vector_model).recommend_users(np.array([3]), k)
    assert (batch_items >= 0).all()


def test_model_info_reports_index_kind(vector_model, stub):
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    assert info.index_kind == vector_model.name
    assert info.index_recall_at_10 >= 0.95


def test_batch_scores_equal_dot_products(vector_model):
    model = ServingModel.load(vector_model)
    users = np.arange(N_USERS)
    items, scores = model.recommend_users(users, K)
    expected = exact_scores(model.arrays, users)
    assert (items >= 0).all()
    assert not (items == 0).any()
    np.testing.assert_allclose(scores, np.take_along_axis(expected, items, axis=1), rtol=1e-5, atol=1e-4)
    I_exact = np.argsort(-expected, axis=1, kind="stable")[:, :K]
    assert recall_at_k(items, I_exact) >= 0.9


def test_load_rejects_index_of_other_dimension(vector_model, tmp_path):
    # A manifest that drops the transform no longer matches an index over D + 1 dimensions.
    manifest = md.read_manifest(vector_model)
    if manifest["index"]["transform"] is None:
        pytest.skip("this index has no transform to drop")
    copy = tmp_path / "copy"
    shutil.copytree(vector_model, copy)
    manifest["index"]["transform"] = None
    (copy / md.MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelDirError, match="does not match the catalogue"):
        ServingModel.load(copy)


def test_excluded_items_scores_equal_dot_products(vector_model, stub):
    arrays = md.load_model_dir(vector_model)
    excluded = [f"i{i}" for i in range(1, 200)]
    response = stub.Recommend(pb.RecommendRequest(user_id="u3", k=K, exclude_item_ids=excluded), timeout=10)
    assert len(response.items) == K
    assert not set(excluded) & {item.item_id for item in response.items}
    for item in response.items:
        position = int(item.item_id[1:])
        expected = float(arrays.user_vectors[3] @ arrays.item_vectors[position])
        assert item.score == pytest.approx(expected, rel=1e-5, abs=1e-4)
