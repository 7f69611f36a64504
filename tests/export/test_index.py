"""The item index choice and its search rules, checked against exact inner-product search in NumPy."""

import faiss
import numpy as np
import pytest

from recsearch.errors import InputError
from recsearch.export import IndexConfig, build_index, recall_at_k
from recsearch.export.index import choose_kind, ivf_list_count, ivfsq8_bytes
from recsearch.item_index import MIPS_TO_L2, MIPS_TO_L2_X8, ItemIndex, mips_to_l2_items, mips_to_l2_queries
from tests.export.fixtures import clustered_vectors

DIM = 16
K = 10


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(3)
    return clustered_vectors(4_000, DIM, rng), clustered_vectors(300, DIM, rng)


def exact_top_k(xb, xq, k=K):
    scores = xq @ xb.T  # (n_queries, n_items)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def wrap(choice, xb):
    params = choice.manifest()
    return ItemIndex.from_manifest(choice.index, xb, params)


def test_recall_at_k_counts_shared_items():
    I_exact = np.array([[1, 2, 3], [4, 5, 6]])
    I = np.array([[3, 9, 1], [-1, -1, -1]])
    assert recall_at_k(I, I_exact, k=3) == pytest.approx(2 / 6)


def test_mips_to_l2_keeps_inner_product_order(vectors):
    xb, xq = vectors
    xb_l2, max_norm = mips_to_l2_items(xb)
    xq_l2 = mips_to_l2_queries(xq)
    assert xb_l2.shape == (len(xb), DIM + 1)
    np.testing.assert_allclose(np.linalg.norm(xb_l2, axis=1), max_norm, rtol=1e-5)
    flat = faiss.IndexFlatL2(DIM + 1)
    flat.add(xb_l2)
    _, I = flat.search(xq_l2, K)
    assert recall_at_k(I, exact_top_k(xb, xq)) == pytest.approx(1.0)


def test_padded_reduction_adds_zero_coordinates(vectors):
    xb, xq = vectors
    padded, max_norm = mips_to_l2_items(xb, 24)
    plain, same_norm = mips_to_l2_items(xb)
    assert padded.shape == (len(xb), 24)
    assert max_norm == same_norm
    np.testing.assert_array_equal(padded[:, : DIM + 1], plain)
    assert not padded[:, DIM + 1 :].any()
    queries = mips_to_l2_queries(xq, 24)
    np.testing.assert_array_equal(queries[:, :DIM], xq)
    assert not queries[:, DIM:].any()


def test_auto_picks_ivfsq8_over_exact_below(vectors):
    xb, xq = vectors
    choice = build_index(xb, xq, IndexConfig(exact_below=1_000))
    manifest = choice.manifest()
    assert manifest["kind"] == "ivfsq8"
    assert manifest["transform"] == MIPS_TO_L2_X8
    assert choice.index.d == 24  # D + 1 = 17, padded to a multiple of 8
    assert manifest["params"]["nlist"] == ivf_list_count(len(xb), IndexConfig())
    chosen = {key: manifest["params"][key] for key in ("nprobe", "rerank_factor")}
    assert chosen in [{key: row[key] for key in chosen} for row in manifest["tried"]]
    assert manifest["search_latency_us"]["p50"] > 0
    assert manifest["build_seconds"] > 0


@pytest.mark.parametrize("kind", ["ivfsq8", "ivfflat", "hnsw"])
@pytest.mark.parametrize("mips_to_l2", [True, False])
def test_approximate_index_reaches_target_recall(vectors, kind, mips_to_l2):
    xb, xq = vectors
    choice = build_index(xb, xq, IndexConfig(kind=kind, exact_below=0, mips_to_l2=mips_to_l2))
    assert choice.kind == kind
    reduction = MIPS_TO_L2_X8 if kind == "ivfsq8" else MIPS_TO_L2
    assert choice.transform == (reduction if mips_to_l2 else None)
    assert choice.recall_at_10 >= 0.95

    # The recall recorded is the one a fresh load of the serialised index reaches.
    loaded = faiss.deserialize_index(faiss.serialize_index(choice.index))
    index = ItemIndex.from_manifest(loaded, xb, choice.manifest())
    D, I = index.search(xq, K)
    assert recall_at_k(I, exact_top_k(xb, xq)) == pytest.approx(choice.recall_at_10)


@pytest.mark.parametrize("kind", ["flat", "ivfsq8", "ivfflat", "hnsw"])
def test_search_scores_are_exact_inner_products(vectors, kind):
    xb, xq = vectors
    index = wrap(build_index(xb, xq, IndexConfig(kind=kind)), xb)
    D, I = index.search(xq, K)
    assert I.shape == (len(xq), K)
    assert (I >= 0).all()
    expected = np.einsum("qd,qkd->qk", xq, xb[I])  # (n_queries, K)
    np.testing.assert_allclose(D, expected, rtol=1e-5, atol=1e-4)
    assert (np.diff(D, axis=1) <= 0).all()


def test_search_pads_when_k_exceeds_catalogue():
    rng = np.random.default_rng(0)
    xb = clustered_vectors(200, DIM, rng)
    xq = clustered_vectors(5, DIM, rng)
    index = wrap(build_index(xb, xq, IndexConfig(kind="ivfflat")), xb)
    D, I = index.search(xq, 300)
    assert I.shape == (5, 300)
    assert (I[:, :200] >= 0).all()
    assert (I[:, 200:] == -1).all()
    assert np.isneginf(D[:, 200:]).all()


def test_ivfpq_under_memory_limit_reranks_exactly():
    rng = np.random.default_rng(1)
    xb = clustered_vectors(10_000, DIM, rng)
    xq = clustered_vectors(200, DIM, rng)
    limit = ivfsq8_bytes(len(xb), DIM, ivf_list_count(len(xb), IndexConfig())) - 1
    config = IndexConfig(exact_below=0, max_index_bytes=limit)
    assert choose_kind(len(xb), DIM, config) == "ivfpq"

    choice = build_index(xb, xq, config)
    assert choice.kind == "ivfpq"
    assert choice.params["rerank_factor"] in config.ivfpq_rerank
    assert choice.recall_at_10 >= 0.95
    index = wrap(choice, xb)
    D, I = index.search(xq, K)
    np.testing.assert_allclose(D, np.einsum("qd,qkd->qk", xq, xb[I]), rtol=1e-5, atol=1e-4)


def test_auto_respects_budget_below_exact_threshold():
    # 1,000 items of dimension 16 take 64,000 bytes as a flat index.
    assert choose_kind(1_000, DIM, IndexConfig(exact_below=5_000, max_index_bytes=64_000)) == "flat"
    assert choose_kind(1_000, DIM, IndexConfig(exact_below=5_000, max_index_bytes=63_999)) != "flat"


def test_budget_too_small_for_any_index_is_named():
    rng = np.random.default_rng(2)
    xb = clustered_vectors(1_000, DIM, rng)
    with pytest.raises(InputError, match="raise --max-index-mb to at least"):
        build_index(xb, xb[:50], IndexConfig(max_index_bytes=1_000))


def test_item_index_rejects_dimension_mismatch(vectors):
    xb, _ = vectors
    flat = faiss.IndexFlatIP(DIM)
    flat.add(xb)
    with pytest.raises(ValueError, match="dimension"):
        ItemIndex(flat, xb, kind="ivfflat", transform=MIPS_TO_L2)


@pytest.mark.parametrize(
    "options",
    [{"kind": "annoy"}, {"ivf_nprobe": ()}, {"hnsw_ef_search": (0, 16)}, {"ivfpq_rerank": (0,)}, {"ivf_nlist": 0}],
)
def test_index_config_rejects_invalid_options(options):
    with pytest.raises(InputError):
        IndexConfig(**options)
