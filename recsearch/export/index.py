"""Choice of the FAISS item index: exact search for small catalogues, else the cheapest approximate
index whose recall@10 against exact search, measured on real user vectors, reaches the target.

Vocabulary as in FAISS: ``xb`` the item vectors (n_items, D), ``xq`` the query user vectors
(n_queries, D), ``D``/``I`` the scores and item indices of a search. Every index uses the
inner-product metric, so its exact top-k is the model's top-k.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import faiss
import numpy as np

from recsearch.errors import InputError

logger = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "hnsw", "ivfpq"]
RECALL_K = 10
_LATENCY_QUERIES = 200  # single-query searches timed for the latency percentiles
# 8-bit product quantisation trains 256 centroids per sub-vector, and FAISS warns below 39 training points per centroid.
_MIN_IVFPQ_ITEMS = 39 * 256


@dataclass(frozen=True)
class IndexConfig:
    """Options of the item index choice and its tuning."""

    kind: IndexKind = "auto"
    # Catalogues up to this size get the exact IndexFlatIP. One exact query reads
    # n_items * D floats, about 13 MB at 50,000 x 64, a few hundred microseconds.
    exact_below: int = 50_000
    target_recall: float = 0.95  # recall@10 against exact search that an approximate index must reach
    n_queries: int = 1_000  # user vectors sampled to measure recall and latency
    hnsw_m: tuple[int, ...] = (32, 48)  # graph degrees tried in order, the next only when the target is missed
    hnsw_ef_construction: int = 64
    hnsw_ef_search: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    # Memory the index may use; "auto" picks IVF-PQ when HNSW would exceed it. None: no limit.
    max_index_bytes: int | None = None
    ivf_nprobe: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "flat", "hnsw", "ivfpq"):
            raise InputError(f"index kind must be auto, flat, hnsw or ivfpq, got {self.kind!r}")
        if not 0.0 < self.target_recall <= 1.0:
            raise InputError(f"target recall must be within (0, 1], got {self.target_recall}")
        if self.n_queries < 1:
            raise InputError(f"the number of recall queries must be at least 1, got {self.n_queries}")
        if self.exact_below < 0:
            raise InputError(f"exact_below must be at least 0, got {self.exact_below}")
        if self.max_index_bytes is not None and self.max_index_bytes < 1:
            raise InputError(f"max_index_bytes must be positive, got {self.max_index_bytes}")


@dataclass
class IndexChoice:
    """The chosen index and what was measured to choose it."""

    index: faiss.Index
    kind: str
    params: dict[str, Any]
    recall_at_10: float
    latency_us: dict[str, float]  # p50 and p99 of one-query searches, one thread
    exact_latency_us: dict[str, float]
    n_queries: int
    tried: list[dict[str, Any]] = field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": "inner_product",
            "params": self.params,
            "recall_at_10": self.recall_at_10,
            "recall_queries": self.n_queries,
            "search_latency_us": self.latency_us,
            "exact_search_latency_us": self.exact_latency_us,
            "latency_note": "one query per search, one FAISS thread, measured at export on the exporting machine",
            "tried": self.tried,
        }


def recall_at_k(I: np.ndarray, I_exact: np.ndarray, k: int = RECALL_K) -> float:
    """Return the mean share of each exact top-k that the approximate top-k also found."""
    hits = [len(np.intersect1d(row[:k], exact[:k])) for row, exact in zip(I, I_exact)]
    return float(np.mean(hits)) / k


def build_index(xb: np.ndarray, xq: np.ndarray, config: IndexConfig) -> IndexChoice:
    """Build the index for ``xb`` and measure its recall@10 on the queries ``xq`` against exact search."""
    xb = np.ascontiguousarray(xb, dtype=np.float32)  # (n_items, D)
    rng = np.random.default_rng(config.seed)
    if len(xq) > config.n_queries:
        xq = xq[rng.choice(len(xq), config.n_queries, replace=False)]
    xq = np.ascontiguousarray(xq, dtype=np.float32)  # (n_queries, D)
    n_items, dim = xb.shape
    k = min(RECALL_K, n_items)

    exact = faiss.IndexFlatIP(dim)
    exact.add(xb)
    _, I_exact = exact.search(xq, k)
    exact_latency = search_latency_us(exact, xq)

    kind = config.kind
    if kind == "auto":
        if n_items <= config.exact_below:
            kind = "flat"
        elif config.max_index_bytes is not None and hnsw_bytes(n_items, dim, config.hnsw_m[0]) > config.max_index_bytes:
            kind = "ivfpq"
        else:
            kind = "hnsw"
    if kind == "flat":
        return IndexChoice(exact, "flat", {}, 1.0, exact_latency, exact_latency, len(xq))
    if kind == "hnsw":
        return _tune_hnsw(xb, xq, I_exact, exact_latency, config)
    return _tune_ivfpq(xb, xq, I_exact, exact_latency, config)


def hnsw_bytes(n_items: int, dim: int, m: int) -> int:
    """Estimate an HNSWFlat index's memory: the vectors plus about 2*M int32 links per item."""
    return n_items * (4 * dim + 2 * m * 4 + 8)


def search_latency_us(index: faiss.Index, xq: np.ndarray) -> dict[str, float]:
    """Time one-query searches of k=10 on one thread; return p50 and p99 in microseconds."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        timings = []
        for row in xq[:_LATENCY_QUERIES]:
            started = time.perf_counter()
            index.search(row[None, :], RECALL_K)
            timings.append((time.perf_counter() - started) * 1e6)
    finally:
        faiss.omp_set_num_threads(previous)
    return {"p50": float(np.percentile(timings, 50)), "p99": float(np.percentile(timings, 99))}


def set_search_params(index: faiss.Index, kind: str, params: dict[str, Any]) -> None:
    """Apply the search-time parameters the manifest records (efSearch, nprobe) to a loaded index."""
    if kind == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = int(params["efSearch"])
    elif kind == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


def _tune_hnsw(
    xb: np.ndarray, xq: np.ndarray, I_exact: np.ndarray, exact_latency: dict[str, float], config: IndexConfig
) -> IndexChoice:
    tried: list[dict[str, Any]] = []
    best: tuple[float, faiss.Index, dict[str, Any]] | None = None
    for m in config.hnsw_m:
        started = time.perf_counter()
        index = faiss.IndexHNSWFlat(xb.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.hnsw_ef_construction
        index.add(xb)
        logger.info("built HNSW M=%d over %d items in %.1f s", m, len(xb), time.perf_counter() - started)
        for ef in config.hnsw_ef_search:
            index.hnsw.efSearch = ef
            _, I = index.search(xq, I_exact.shape[1])
            recall = recall_at_k(I, I_exact)
            tried.append({"M": m, "efSearch": ef, "recall_at_10": recall})
            params = {"M": m, "efConstruction": config.hnsw_ef_construction, "efSearch": ef}
            if best is None or recall > best[0]:
                best = (recall, index, params)
            if recall >= config.target_recall:
                return IndexChoice(
                    index, "hnsw", params, recall, search_latency_us(index, xq), exact_latency, len(xq), tried
                )
    assert best is not None
    recall, index, params = best
    logger.warning(
        "no HNSW setting reached recall@10 %.2f (best %.3f with %s); exporting the best one",
        config.target_recall, recall, params,
    )
    set_search_params(index, "hnsw", params)
    return IndexChoice(index, "hnsw", params, recall, search_latency_us(index, xq), exact_latency, len(xq), tried)


def _tune_ivfpq(
    xb: np.ndarray, xq: np.ndarray, I_exact: np.ndarray, exact_latency: dict[str, float], config: IndexConfig
) -> IndexChoice:
    n_items, dim = xb.shape
    if n_items < _MIN_IVFPQ_ITEMS:
        raise InputError(
            f"an IVF-PQ index needs at least {_MIN_IVFPQ_ITEMS} items to train its codebooks, "
            f"the catalogue has {n_items}; use the flat or hnsw index kind"
        )
    # About 4 * sqrt(n) lists, with at least the 39 training points per centroid that FAISS expects.
    n_lists = int(min(max(16, 4 * math.sqrt(n_items)), max(1, n_items // 39)))
    n_subquantizers = next(m for m in (dim // 2, dim // 4, dim // 8, 1) if m >= 1 and dim % m == 0)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, n_lists, n_subquantizers, 8, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(config.seed)
    n_train = min(n_items, max(39 * n_lists, 10_000))
    index.train(xb[rng.choice(n_items, n_train, replace=False)])
    index.add(xb)
    tried: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    for nprobe in config.ivf_nprobe:
        if nprobe > n_lists:
            break
        index.nprobe = nprobe
        _, I = index.search(xq, I_exact.shape[1])
        recall = recall_at_k(I, I_exact)
        params = {"nlist": n_lists, "m": n_subquantizers, "nbits": 8, "nprobe": nprobe}
        tried.append({"nprobe": nprobe, "recall_at_10": recall})
        if best is None or recall > best[0]:
            best = (recall, params)
        if recall >= config.target_recall:
            break
    assert best is not None
    recall, params = best
    if recall < config.target_recall:
        # NOTE: product quantisation loses precision that more probes cannot recover. Re-ranking
        # on the full vectors would recover it but needs their memory, so the target may be missed.
        logger.warning("IVF-PQ reached recall@10 %.3f, below the target %.2f", recall, config.target_recall)
    index.nprobe = params["nprobe"]
    return IndexChoice(index, "ivfpq", params, recall, search_latency_us(index, xq), exact_latency, len(xq), tried)
