"""The item index's search rules, shared by export (which measures them) and serving (which applies them).

An approximate index may be built over transformed item vectors, or may rank candidates by
approximate distances, so its raw FAISS output is not the model's ranking. ``ItemIndex``
wraps the FAISS index with what the manifest records about it and returns, for each query,
item indices ranked by their exact inner product with the query, and those inner products
as scores. Vocabulary as in FAISS: ``xb`` item vectors (n_items, D), ``xq`` queries (B, D),
``D``/``I`` scores and item indices. This module imports only NumPy and FAISS, so that the
server stays free of torch.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

# The maximum inner product search (MIPS) to L2 reduction: each item vector x gets the extra
# coordinate sqrt(max_norm^2 - ||x||^2) and each query q the extra coordinate 0. Then
# ||q' - x'||^2 = ||q||^2 + max_norm^2 - 2 q.x, so the items nearest in L2 are those of
# largest inner product. On the clustered vectors of benchmarks/serving_benchmark.py at
# 1,000,000 items, IVF-Flat over the reduced vectors reached recall@10 0.95 probing 48 lists,
# and over the raw vectors with the inner-product metric it needed more than 64.
MIPS_TO_L2 = "mips_to_l2"
# The same reduction, zero-padded to a multiple of 8 dimensions: FAISS's IVF-SQ8 search ran
# 3x slower at D + 1 = 65 dimensions than at 72 (300,000 items, same queries, measured here).
MIPS_TO_L2_X8 = "mips_to_l2_x8"
TRANSFORMS = (None, MIPS_TO_L2, MIPS_TO_L2_X8)
# Maximum number of candidate vector floats gathered at once to recompute exact scores (16 MiB).
_RESCORE_FLOATS = 1 << 22


def mips_to_l2_items(xb: np.ndarray, width: int | None = None) -> tuple[np.ndarray, float]:
    """Append the reduction's extra coordinate to each item vector, then zeros up to ``width`` (default D + 1).

    Returns the (n_items, width) vectors and max_norm.
    """
    n_items, dim = xb.shape
    squared_norms = np.einsum("nd,nd->n", xb, xb, dtype=np.float64)  # (n_items,)
    max_squared = float(squared_norms.max()) if n_items else 0.0
    out = np.zeros((n_items, width or dim + 1), dtype=np.float32)  # (n_items, width)
    out[:, :dim] = xb
    out[:, dim] = np.sqrt(np.maximum(max_squared - squared_norms, 0.0))
    return out, float(np.sqrt(max_squared))


def mips_to_l2_queries(xq: np.ndarray, width: int | None = None) -> np.ndarray:
    """Append the reduction's extra coordinate 0 to each query, and zeros up to ``width``: (B, D) to (B, width)."""
    query = np.zeros((len(xq), width or xq.shape[1] + 1), dtype=np.float32)  # (B, width)
    query[:, : xq.shape[1]] = xq
    return query


def index_dim(dim: int, transform: str | None) -> int:
    """Return the dimension of an index over D-dimensional vectors after ``transform``."""
    if transform == MIPS_TO_L2:
        return dim + 1
    if transform == MIPS_TO_L2_X8:
        return -(-(dim + 1) // 8) * 8
    return dim


def transform_items(xb: np.ndarray, transform: str | None) -> np.ndarray:
    """Return the item vectors an index with ``transform`` contains: (n_items, index D)."""
    if transform is None:
        return xb
    return mips_to_l2_items(xb, index_dim(xb.shape[1], transform))[0]


def transform_queries(xq: np.ndarray, transform: str | None) -> np.ndarray:
    """Return the queries to search an index with ``transform`` for: (B, index D)."""
    if transform is None:
        return xq
    return mips_to_l2_queries(xq, index_dim(xq.shape[1], transform))


def set_search_params(index: faiss.Index, kind: str, params: dict[str, Any]) -> None:
    """Apply the search-time parameters that the manifest records (efSearch, nprobe) to a FAISS index."""
    if kind == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = int(params["efSearch"])
    elif kind in ("ivfflat", "ivfsq8", "ivfpq"):
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])


class ItemIndex:
    """A FAISS item index and its search rules: query transform, candidates per result, exact scores.

    ``kind`` is one of flat, ivfflat, ivfsq8, hnsw, ivfpq. The flat index already returns exact
    inner products. Every other kind fetches ``rerank_factor * k`` candidates (at least k,
    at most n_items), recomputes their inner products from ``item_vectors`` and keeps the
    best k. So every kind returns ``xq @ item_vector`` as scores, up to float32 rounding.
    """

    def __init__(
        self,
        index: faiss.Index,
        item_vectors: np.ndarray,
        *,
        kind: str,
        transform: str | None = None,
        rerank_factor: int = 1,
    ) -> None:
        if transform not in TRANSFORMS:
            raise ValueError(f"index transform must be one of {TRANSFORMS}, got {transform!r}")
        if rerank_factor < 1:
            raise ValueError(f"rerank_factor must be at least 1, got {rerank_factor}")
        n_items, dim = item_vectors.shape
        if index.ntotal != n_items or index.d != index_dim(dim, transform):
            raise ValueError(
                f"the index contains {index.ntotal} vectors of dimension {index.d}, but {n_items} items of dimension "
                f"{dim} with transform {transform} need {n_items} vectors of dimension {index_dim(dim, transform)}"
            )
        self.faiss_index = index
        # A plain ndarray view of a memory-mapped array: indexing np.memmap costs more per call.
        self.item_vectors = np.asarray(item_vectors)  # (n_items, D)
        self.kind = kind
        self.transform = transform
        self.rerank_factor = rerank_factor
        self.n_items = n_items

    @classmethod
    def from_manifest(cls, index: faiss.Index, item_vectors: np.ndarray, info: dict[str, Any]) -> "ItemIndex":
        """Wrap a loaded FAISS index with the search rules of the manifest's ``index`` entry.

        Manifests written before the transform and the rerank factor existed lack both
        keys, and their indexes need neither.
        """
        params = info.get("params") or {}
        set_search_params(index, info["kind"], params)
        return cls(
            index,
            item_vectors,
            kind=info["kind"],
            transform=info.get("transform"),
            rerank_factor=int(params.get("rerank_factor", 1)),
        )

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return scores ``D`` and item indices ``I``, both (B, k), best first, for the queries ``xq``.

        Scores are exact inner products. Rows with fewer than k results end in I = -1 and
        D = -inf. ``k`` may exceed n_items.
        """
        xq = np.ascontiguousarray(xq, dtype=np.float32)  # (B, D)
        query = transform_queries(xq, self.transform)  # (B, index D)
        if self.kind == "flat":
            return self.faiss_index.search(query, k)

        n_fetch = max(k, min(self.n_items, k * self.rerank_factor))
        _, I = self.faiss_index.search(query, n_fetch)  # (B, n_fetch), ranked by the index's own distance
        D = self.exact_scores(xq, I)  # (B, n_fetch)
        order = np.argsort(-D, axis=1, kind="stable")[:, :k]  # (B, k)
        rows = np.arange(len(order))[:, None]  # (B, 1), for indexing that costs less than take_along_axis
        return D[rows, order], I[rows, order]

    def exact_scores(self, xq: np.ndarray, I: np.ndarray) -> np.ndarray:
        """Return the inner products (B, F) of each query with its candidates ``I``, and -inf where I is -1."""
        if I.size == 0:
            return np.zeros(I.shape, dtype=np.float32)
        dim = self.item_vectors.shape[1]
        rows_per_chunk = max(1, _RESCORE_FLOATS // (I.shape[1] * dim))
        parts = []
        for start in range(0, len(I), rows_per_chunk):
            block = np.maximum(I[start : start + rows_per_chunk], 0)  # (b, F)
            candidates = self.item_vectors.take(block, axis=0)  # (b, F, D)
            parts.append(np.matmul(candidates, xq[start : start + rows_per_chunk, :, None])[..., 0])  # (b, F)
        D = parts[0] if len(parts) == 1 else np.concatenate(parts)  # (B, F)
        missing = I < 0
        if missing.any():
            D[missing] = -np.inf
        return D.astype(np.float32, copy=False)
