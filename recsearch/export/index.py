"""Choice of the FAISS item index: exact search for small catalogues, else the cheapest approximate
index whose recall@10 against exact search, measured on real user vectors, reaches the target.

Vocabulary as in FAISS: ``xb`` the item vectors (n_items, D), ``xq`` the query user vectors
(n_queries, D), ``D``/``I`` the scores and item indices of a search. Scores are inner products
for every kind: approximate indexes may search transformed vectors, but ``ItemIndex``
re-scores their candidates exactly, and recall and latency are measured through it, as the
server searches.
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
from recsearch.item_index import (
    MIPS_TO_L2,
    MIPS_TO_L2_X8,
    ItemIndex,
    index_dim,
    set_search_params,
    transform_items,
)

logger = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "ivfsq8", "ivfflat", "hnsw", "ivfpq"]
INDEX_KINDS = ("auto", "flat", "ivfsq8", "ivfflat", "hnsw", "ivfpq")
RECALL_K = 10
_LATENCY_QUERIES = 200  # single-query searches timed for the latency percentiles
# k-means, and so IVF training, needs at least 39 training points per centroid, or FAISS warns.
# 8-bit product quantisation trains 256 centroids per sub-vector.
_MIN_POINTS_PER_CENTROID = 39
_MIN_IVFPQ_ITEMS = _MIN_POINTS_PER_CENTROID * 256
_TRAIN_POINTS_PER_LIST = 64  # IVF coarse quantizer training sample, per list


@dataclass(frozen=True)
class IndexConfig:
    """Options of the item index choice and its tuning."""

    # "auto": flat up to exact_below items, else IVF-SQ8, or IVF-PQ when IVF-SQ8 exceeds
    # max_index_bytes. On the clustered vectors of benchmarks/serving_benchmark.py at 1,000,000
    # items (D = 64, one thread of a 2-core x86 VM), IVF-SQ8 and IVF-Flat over the MIPS-to-L2
    # reduction both reached recall@10 0.96 probing 48 of 4,000 lists, in 264 and 523 µs per
    # query (500 different queries): the 8-bit codes read a quarter of the memory. HNSW took
    # about 1 ms at 100,000 items, and at 1,000,000 stayed below 0.5 even at efSearch 768.
    kind: IndexKind = "auto"
    # Catalogues up to this size get the exact IndexFlatIP. One exact query reads
    # n_items * D floats, about 13 MB at 50,000 x 64, a few hundred microseconds.
    exact_below: int = 50_000
    target_recall: float = 0.95  # recall@10 against exact search that an approximate index must reach
    n_queries: int = 1_000  # user vectors sampled to measure recall and latency
    # Build IVF-SQ8, IVF-Flat and HNSW over the MIPS-to-L2 reduction of the item vectors (see
    # recsearch.item_index); False keeps the inner-product metric. IVF-PQ always keeps it,
    # because its sub-quantizer count must divide the dimension, and D + 1 rarely allows one.
    mips_to_l2: bool = True
    ivf_nlist: int | None = None  # IVF list count, or None for about 4 * sqrt(n_items)
    # Lists probed, tried in order. The tuning ends with all lists, which IVF-Flat searches exactly.
    ivf_nprobe: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
    hnsw_m: tuple[int, ...] = (32, 48)  # graph degrees tried in order, the next only when the target is missed
    hnsw_ef_construction: int = 128
    hnsw_ef_search: tuple[int, ...] = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
    # IVF-SQ8 and IVF-PQ candidates per result whose exact inner products the search
    # recomputes, tried in order for each nprobe.
    ivfsq8_rerank: tuple[int, ...] = (1, 2, 4)
    ivfpq_rerank: tuple[int, ...] = (1, 2, 4, 8, 16)
    # Memory the index may use, or None for no limit. "auto" picks IVF-PQ when IVF-SQ8 would exceed it.
    max_index_bytes: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise InputError(f"index kind must be one of {', '.join(INDEX_KINDS)}, got {self.kind!r}")
        if not 0.0 < self.target_recall <= 1.0:
            raise InputError(f"target recall must be within (0, 1], got {self.target_recall}")
        if self.n_queries < 1:
            raise InputError(f"the number of recall queries must be at least 1, got {self.n_queries}")
        if self.exact_below < 0:
            raise InputError(f"exact_below must be at least 0, got {self.exact_below}")
        if self.max_index_bytes is not None and self.max_index_bytes < 1:
            raise InputError(f"max_index_bytes must be positive, got {self.max_index_bytes}")
        if self.ivf_nlist is not None and self.ivf_nlist < 1:
            raise InputError(f"ivf_nlist must be at least 1, got {self.ivf_nlist}")
        if self.hnsw_ef_construction < 1:
            raise InputError(f"hnsw_ef_construction must be at least 1, got {self.hnsw_ef_construction}")
        for name in ("ivf_nprobe", "hnsw_m", "hnsw_ef_search", "ivfsq8_rerank", "ivfpq_rerank"):
            values = getattr(self, name)
            if not values or min(values) < 1:
                raise InputError(f"{name} must list at least one value, all at least 1, got {values}")


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
    transform: str | None = None  # None, or the reduction (MIPS_TO_L2, MIPS_TO_L2_X8) of the vectors the index contains
    build_seconds: float = 0.0  # building the chosen index, training included, on the exporting machine

    def manifest(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": "inner_product",
            "transform": self.transform,
            "params": self.params,
            "recall_at_10": self.recall_at_10,
            "recall_queries": self.n_queries,
            "search_latency_us": self.latency_us,
            "exact_search_latency_us": self.exact_latency_us,
            "latency_note": "one query per search, one FAISS thread, measured at export on the exporting machine",
            "build_seconds": self.build_seconds,
            "tried": self.tried,
        }


def recall_at_k(I: np.ndarray, I_exact: np.ndarray, k: int = RECALL_K) -> float:
    """Return the mean share of each exact top-k that the approximate top-k also found."""
    found = I[:, :k, None] == I_exact[:, None, :k]  # (n_queries, k, k)
    return float(found.any(axis=1).sum(axis=1).mean()) / k


def build_index(xb: np.ndarray, xq: np.ndarray, config: IndexConfig) -> IndexChoice:
    """Build the index for ``xb`` and measure its recall@10 on the queries ``xq`` against exact search."""
    xb = np.ascontiguousarray(xb, dtype=np.float32)  # (n_items, D)
    rng = np.random.default_rng(config.seed)
    if len(xq) > config.n_queries:
        xq = xq[rng.choice(len(xq), config.n_queries, replace=False)]
    xq = np.ascontiguousarray(xq, dtype=np.float32)  # (n_queries, D)
    n_items, dim = xb.shape
    k = min(RECALL_K, n_items)

    started = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(xb)
    flat_seconds = time.perf_counter() - started
    exact = ItemIndex(flat, xb, kind="flat")
    _, I_exact = exact.search(xq, k)
    exact_latency = search_latency_us(exact, xq)

    kind = choose_kind(n_items, dim, config)
    if kind == "flat":
        return IndexChoice(flat, "flat", {}, 1.0, exact_latency, exact_latency, len(xq), build_seconds=flat_seconds)
    if kind in ("ivfsq8", "ivfflat"):
        return _tune_ivf(xb, xq, I_exact, exact_latency, config, kind)
    if kind == "hnsw":
        return _tune_hnsw(xb, xq, I_exact, exact_latency, config)
    return _tune_ivfpq(xb, xq, I_exact, exact_latency, config)


def choose_kind(n_items: int, dim: int, config: IndexConfig) -> str:
    """Return the index kind to build: ``config.kind``, or for "auto" the one the catalogue size and memory limit call for."""
    if config.kind != "auto":
        return config.kind
    budget = config.max_index_bytes
    if n_items <= config.exact_below and (budget is None or n_items * dim * 4 <= budget):
        return "flat"
    if budget is not None and ivfsq8_bytes(n_items, dim, ivf_list_count(n_items, config)) > budget:
        return "ivfpq"
    return "ivfsq8"


def ivf_list_count(n_items: int, config: IndexConfig) -> int:
    """Return the IVF list count: ``config.ivf_nlist``, else about 4 * sqrt(n_items), with 39 items per list at least."""
    if config.ivf_nlist is not None:
        return max(1, min(config.ivf_nlist, n_items // _MIN_POINTS_PER_CENTROID))
    return int(min(max(16, 4 * math.sqrt(n_items)), max(1, n_items // _MIN_POINTS_PER_CENTROID)))


def ivfsq8_bytes(n_items: int, dim: int, n_lists: int) -> int:
    """Estimate an IVF-SQ8 index's memory over the padded MIPS-to-L2 reduction: codes, int64 ids and centroids."""
    width = index_dim(dim, MIPS_TO_L2_X8)
    return n_items * (width + 8) + n_lists * 4 * width


def search_latency_us(index: ItemIndex, xq: np.ndarray) -> dict[str, float]:
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


@dataclass
class _Sweep:
    """The search settings tried on one built index, and the first that reached the target (else the best)."""

    params: dict[str, Any]
    recall: float
    reached: bool
    tried: list[dict[str, Any]]


def _sweep(
    index: ItemIndex, settings: list[dict[str, Any]], xq: np.ndarray, I_exact: np.ndarray, config: IndexConfig
) -> _Sweep:
    """Try the search settings in order, each on all queries, until one reaches the target recall.

    The index is left with the returned setting applied.
    """
    tried: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] | None = None
    for setting in settings:
        _apply(index, setting)
        _, I = index.search(xq, I_exact.shape[1])
        recall = recall_at_k(I, I_exact)
        tried.append({**setting, "recall_at_10": recall})
        if best is None or recall > best[0]:
            best = (recall, setting)
        if recall >= config.target_recall:
            return _Sweep(setting, recall, True, tried)
    assert best is not None
    _apply(index, best[1])
    return _Sweep(best[1], best[0], False, tried)


def _apply(index: ItemIndex, setting: dict[str, Any]) -> None:
    set_search_params(index.faiss_index, index.kind, setting)
    index.rerank_factor = int(setting.get("rerank_factor", 1))


def _choice(
    index: ItemIndex, params: dict[str, Any], sweep: _Sweep, xq: np.ndarray, exact_latency: dict[str, float],
    tried: list[dict[str, Any]], build_seconds: float,
) -> IndexChoice:
    return IndexChoice(
        index.faiss_index, index.kind, {**params, **sweep.params}, sweep.recall, search_latency_us(index, xq),
        exact_latency, len(xq), tried, index.transform, build_seconds,
    )


def _warn_missed(kind: str, config: IndexConfig, recall: float, params: dict[str, Any]) -> None:
    logger.warning(
        "no %s setting reached recall@10 %.2f, so the best one is exported: recall@10 %.3f with %s",
        kind, config.target_recall, recall, params,
    )


def _train_sample(vectors: np.ndarray, n_lists: int, config: IndexConfig) -> np.ndarray:
    n_items = len(vectors)
    n_train = min(n_items, max(_TRAIN_POINTS_PER_LIST * n_lists, 10_000))
    rng = np.random.default_rng(config.seed)
    return vectors[np.sort(rng.choice(n_items, n_train, replace=False))]


def _tune_ivf(
    xb: np.ndarray, xq: np.ndarray, I_exact: np.ndarray, exact_latency: dict[str, float], config: IndexConfig,
    kind: str,
) -> IndexChoice:
    """Build IVF-Flat or IVF-SQ8 (``kind``) and probe more lists until the target recall is reached."""
    started = time.perf_counter()
    reduction = MIPS_TO_L2_X8 if kind == "ivfsq8" else MIPS_TO_L2
    transform = reduction if config.mips_to_l2 else None
    vectors = transform_items(xb, transform)  # (n_items, index D)
    dim = index_dim(xb.shape[1], transform)
    n_lists = ivf_list_count(len(xb), config)
    metric = faiss.METRIC_L2 if transform else faiss.METRIC_INNER_PRODUCT
    quantizer = faiss.IndexFlatL2(dim) if transform else faiss.IndexFlatIP(dim)
    if kind == "ivfsq8":
        faiss_index = faiss.IndexIVFScalarQuantizer(quantizer, dim, n_lists, faiss.ScalarQuantizer.QT_8bit, metric)
        name, rerank_factors = "IVF-SQ8", config.ivfsq8_rerank
    else:
        faiss_index = faiss.IndexIVFFlat(quantizer, dim, n_lists, metric)
        name, rerank_factors = "IVF-Flat", None
    faiss_index.train(_train_sample(vectors, n_lists, config))
    faiss_index.add(vectors)
    build_seconds = time.perf_counter() - started
    logger.info("built %s with %d lists over %d items in %.1f s", name, n_lists, len(xb), build_seconds)

    index = ItemIndex(faiss_index, xb, kind=kind, transform=transform)
    # Probing every list makes IVF-Flat exact, so its target is always reached. The 8-bit
    # codes rank candidates approximately, so each nprobe is also tried with more
    # candidates re-scored exactly before more lists are probed.
    nprobes = [nprobe for nprobe in config.ivf_nprobe if nprobe < n_lists] + [n_lists]
    if rerank_factors is None:
        settings = [{"nprobe": nprobe} for nprobe in nprobes]
    else:
        settings = [{"nprobe": nprobe, "rerank_factor": factor} for nprobe in nprobes for factor in rerank_factors]
    sweep = _sweep(index, settings, xq, I_exact, config)
    if not sweep.reached:
        _warn_missed(name, config, sweep.recall, sweep.params)
    return _choice(index, {"nlist": n_lists}, sweep, xq, exact_latency, sweep.tried, build_seconds)


def _tune_hnsw(
    xb: np.ndarray, xq: np.ndarray, I_exact: np.ndarray, exact_latency: dict[str, float], config: IndexConfig
) -> IndexChoice:
    transform = MIPS_TO_L2 if config.mips_to_l2 else None
    vectors = transform_items(xb, transform)  # (n_items, index D)
    metric = faiss.METRIC_L2 if transform else faiss.METRIC_INNER_PRODUCT
    tried: list[dict[str, Any]] = []
    best: tuple[_Sweep, ItemIndex, dict[str, Any], float] | None = None
    for m in config.hnsw_m:
        started = time.perf_counter()
        faiss_index = faiss.IndexHNSWFlat(vectors.shape[1], m, metric)
        faiss_index.hnsw.efConstruction = config.hnsw_ef_construction
        faiss_index.add(vectors)
        build_seconds = time.perf_counter() - started
        logger.info("built HNSW M=%d over %d items in %.1f s", m, len(xb), build_seconds)

        index = ItemIndex(faiss_index, xb, kind="hnsw", transform=transform)
        sweep = _sweep(index, [{"efSearch": ef} for ef in config.hnsw_ef_search], xq, I_exact, config)
        tried += [{"M": m, **row} for row in sweep.tried]
        params = {"M": m, "efConstruction": config.hnsw_ef_construction}
        if sweep.reached:
            return _choice(index, params, sweep, xq, exact_latency, tried, build_seconds)
        if best is None or sweep.recall > best[0].recall:
            best = (sweep, index, params, build_seconds)

    assert best is not None
    sweep, index, params, build_seconds = best
    _warn_missed("HNSW", config, sweep.recall, {**params, **sweep.params})
    _apply(index, sweep.params)
    return _choice(index, params, sweep, xq, exact_latency, tried, build_seconds)


def _tune_ivfpq(
    xb: np.ndarray, xq: np.ndarray, I_exact: np.ndarray, exact_latency: dict[str, float], config: IndexConfig
) -> IndexChoice:
    n_items, dim = xb.shape
    if n_items < _MIN_IVFPQ_ITEMS:
        raise InputError(
            f"an IVF-PQ index needs at least {_MIN_IVFPQ_ITEMS} items to train its codebooks, "
            f"the catalogue has {n_items}; choose another index kind, or with --index auto raise "
            f"--max-index-mb to at least {ivfsq8_bytes(n_items, dim, ivf_list_count(n_items, config)) / 2**20:.2f}, "
            "the size of an IVF-SQ8 index"
        )
    started = time.perf_counter()
    n_lists = ivf_list_count(n_items, config)
    n_subquantizers = next(m for m in (dim // 2, dim // 4, dim // 8, 1) if m >= 1 and dim % m == 0)
    quantizer = faiss.IndexFlatIP(dim)
    faiss_index = faiss.IndexIVFPQ(quantizer, dim, n_lists, n_subquantizers, 8, faiss.METRIC_INNER_PRODUCT)
    faiss_index.train(_train_sample(xb, n_lists, config))
    faiss_index.add(xb)
    build_seconds = time.perf_counter() - started
    logger.info("built IVF-PQ with %d lists over %d items in %.1f s", n_lists, n_items, build_seconds)

    # NOTE: re-ranking reads the candidates' rows of item_vectors.npy, which the server maps from
    # disk. The memory limit counts only the index, so under memory pressure those reads may
    # come from disk and cost more than the latency measured here.
    index = ItemIndex(faiss_index, xb, kind="ivfpq")
    nprobes = [nprobe for nprobe in config.ivf_nprobe if nprobe < n_lists] + [n_lists]
    settings = [{"nprobe": nprobe, "rerank_factor": factor} for nprobe in nprobes for factor in config.ivfpq_rerank]
    sweep = _sweep(index, settings, xq, I_exact, config)
    if not sweep.reached:
        # NOTE: product quantisation can rank a true top-10 item below every candidate
        # re-scored, so even all lists and the largest rerank factor may miss the target.
        logger.warning("IVF-PQ reached recall@10 %.3f, below the target %.2f", sweep.recall, config.target_recall)
    params = {"nlist": n_lists, "m": n_subquantizers, "nbits": 8}
    return _choice(index, params, sweep, xq, exact_latency, sweep.tried, build_seconds)
