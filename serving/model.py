"""A loaded MODEL_DIR that computes top-k results with NumPy, FAISS and onnxruntime, without torch.

Shared by the gRPC server and the offline ``recommend-batch`` command, so both apply the
same exclusions, filters and fallback. Vocabulary: ``xq`` query vectors (B, D), ``I`` item
indices and ``D`` inner-product scores of a FAISS search, ``k`` the number of results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from recsearch import model_dir as md
from recsearch.errors import ModelDirError
from recsearch.item_index import ItemIndex

logger = logging.getLogger(__name__)

# Filters that leave at most this many items, or this share of the catalogue, are served
# by exact search over the allowed items: over-fetching from the index would need too many
# candidates to find k allowed ones.
_EXACT_SUBSET_ITEMS = 20_000
_EXACT_SUBSET_SHARE = 0.02
# Candidates fetched from the index at most before falling back to exact search.
_MAX_FETCH = 8_192
# np.isin sorts its inputs, which took about 25 us for 37 candidates and 20 banned items on the
# benchmark machine. Comparing every (candidate, banned item) pair took about 4 us there, so
# pairs are compared directly up to this many.
_PAIRWISE_PAIRS = 1 << 14
_NO_ITEMS = np.zeros(0, dtype=np.int32)
_NO_ITEMS.flags.writeable = False
# Filter masks kept per model, so a filter that many requests repeat costs one pass over the
# catalogue instead of one per request: at most this many masks of n_items bytes each.
_FILTER_MASKS = 8


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, so that no request costs unbounded memory or time."""

    max_k: int = 1_000
    max_batch: int = 1_000  # users in one RecommendBatch request
    max_ids: int = 1_000  # ids in one recent-items or exclusion list
    max_filters: int = 16
    max_filter_values: int = 1_000  # values in one filter's allowed or excluded list


class RequestError(Exception):
    """An invalid request or one naming a missing item; ``code`` is "invalid_argument" or "not_found"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AttributeFilter:
    """Keep items whose attribute value is in ``allowed_values`` (when given) and not in ``excluded_values``."""

    attribute: str
    allowed_values: tuple[str, ...] = ()
    excluded_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Query:
    """One user's top-k request."""

    user_id: str
    k: int
    recent_item_ids: tuple[str, ...] = ()  # oldest first
    include_seen: bool = False
    exclude_item_ids: tuple[str, ...] = ()
    filters: tuple[AttributeFilter, ...] = ()


@dataclass
class Recommendation:
    """Top-k item ids with their scores, best first."""

    item_ids: list[str]
    scores: list[float]
    fallback: bool = False  # the popularity fallback produced the items


@dataclass
class _Plan:
    """A validated query in index space: the query vector (or None for the fallback) and what to remove."""

    k: int
    vector: np.ndarray | None  # (D,) float32
    banned: np.ndarray  # item indices never returned
    allowed: np.ndarray | None  # (n_items,) bool, None without filters
    fallback: bool = False
    history: np.ndarray | None = None  # item indices the user tower reads, oldest first
    user: int | None = None  # user index, None for an unknown user


@dataclass
class _Attribute:
    codes: np.ndarray  # (n_items,) int32
    value_codes: dict[str, int]
    n_values: int


class ServingModel:
    """One model version, read-only after loading, safe to share between threads."""

    def __init__(self, arrays: md.ModelArrays, index: ItemIndex, session: Any, limits: Limits) -> None:
        self.arrays = arrays
        self.manifest = arrays.manifest
        self.version: str = arrays.manifest["model_version"]
        self.limits = limits
        self.index = index  # its search returns exact inner products as scores, best first
        self.session = session
        # Plain ndarray views of the memory-mapped arrays: slicing an np.memmap costs about 1 us
        # more per call, for the same pages.
        self.item_vectors = np.asarray(arrays.item_vectors)  # (n_items, D)
        self.user_vectors = np.asarray(arrays.user_vectors)  # (n_users, D)
        self.seen_indptr = np.asarray(arrays.seen_indptr)  # (n_users + 1,)
        self.seen_items = np.asarray(arrays.seen_items)  # (nnz,)
        self.popular_items = np.asarray(arrays.popular_items)  # (n_items,)
        self.popular_scores = np.asarray(arrays.popular_scores)  # (n_items,)
        self.n_items = len(arrays.item_ids)
        self.n_users = len(arrays.user_ids)
        self.item_ids = arrays.item_ids
        self.item_index = {item_id: i for i, item_id in enumerate(arrays.item_ids.tolist())}
        self.user_index = {user_id: i for i, user_id in enumerate(arrays.user_ids.tolist())}
        tower = arrays.manifest.get("user_tower") or {}
        self.history_length = int(tower.get("history_length", 0))
        self.unknown_user = int(tower.get("unknown_user_index", self.n_users))
        self.attributes = {
            name: _Attribute(codes, {value: code for code, value in enumerate(values.tolist()) if code}, len(values))
            for name, (codes, values) in arrays.attributes.items()
        }
        self._filter_masks: dict[tuple[AttributeFilter, ...], np.ndarray] = {}  # oldest first
        self._filter_masks_lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: str | Path, *, limits: Limits = Limits(), verify: bool = True) -> "ServingModel":
        """Load and check a MODEL_DIR, then run one query through every part, so a broken file fails here."""
        started = time.perf_counter()
        arrays = md.load_model_dir(model_dir, verify=verify)
        index = _read_index(arrays)
        session = _open_user_tower(arrays.user_tower_path) if arrays.user_tower_path else None
        model = cls(arrays, index, session, limits)
        model._warm_up()
        logger.debug("loaded %s in %.2f s", arrays.root, time.perf_counter() - started)
        return model

    @property
    def uses_recent_items(self) -> bool:
        return self.session is not None

    def info(self) -> dict[str, Any]:
        """Return what GetModelInfo reports."""
        index = self.manifest["index"]
        return {
            "model_version": self.version,
            "created_at": self.manifest["created_at"],
            "n_items": self.n_items,
            "n_users": self.n_users,
            "embedding_dim": int(self.item_vectors.shape[1]),
            "index_kind": index["kind"],
            "index_recall_at_10": float(index["recall_at_10"]),
            "metrics": {name: float(value) for name, value in self.manifest.get("metrics", {}).items()},
            "uses_recent_items": self.uses_recent_items,
            "filter_attributes": sorted(self.attributes),
            "max_k": self.limits.max_k,
        }

    # Queries ------------------------------------------------------------------------------

    def recommend(self, query: Query) -> Recommendation:
        return self.recommend_many([query])[0]

    def recommend_many(self, queries: Sequence[Query]) -> list[Recommendation]:
        """Run many queries: one user-tower run for all that need it, then one search per query.

        Raises RequestError naming the first invalid query.
        """
        plans = [self._plan(query) for query in queries]
        self._embed_histories(plans)
        return [self._answer(plan) for plan in plans]

    def recommend_users(
        self, user_indices: np.ndarray, k: int, *, include_seen: bool = False,
        filters: Sequence[AttributeFilter] = (), exclude_item_ids: Sequence[str] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (B, k) item indices and scores for known users from their stored vectors.

        Rows with fewer than k results are padded with -1 and NaN. One batched search serves
        every row, and only rows that the exclusions leave short are searched again alone.
        """
        self._check_k(k)
        allowed = self._allowed_items(tuple(filters))
        excluded = self._known_items(exclude_item_ids, "exclude_item_ids")
        user_indices = np.asarray(user_indices, dtype=np.int64)
        out_items = np.full((len(user_indices), k), -1, dtype=np.int64)
        out_scores = np.full((len(user_indices), k), np.nan, dtype=np.float32)
        if len(user_indices) == 0:
            return out_items, out_scores

        indptr = self.seen_indptr
        n_seen = np.zeros(len(user_indices), dtype=np.int64) if include_seen else (
            indptr[user_indices + 1] - indptr[user_indices]
        )
        fetch = min(self.n_items, k + int(np.percentile(n_seen, 95)) + len(excluded))
        use_batch = allowed is None or allowed.sum() > max(_EXACT_SUBSET_ITEMS, _EXACT_SUBSET_SHARE * self.n_items)
        xq = np.ascontiguousarray(self.user_vectors[user_indices], dtype=np.float32)  # (B, D)
        scores_all, items_all = self.index.search(xq, fetch) if use_batch else (None, None)

        for row, user in enumerate(user_indices):
            banned = excluded
            if not include_seen:
                banned = np.concatenate([excluded, self.seen_items[indptr[user] : indptr[user + 1]]])
            result = None
            if items_all is not None:
                result = self._filter_candidates(items_all[row], scores_all[row], k, banned, allowed)
            if result is None:
                result = self._search(xq[row], k, banned, allowed)
            items, scores = result
            out_items[row, : len(items)] = items
            out_scores[row, : len(scores)] = scores
        return out_items, out_scores

    def similar_items(
        self, item_id: str, k: int, exclude_item_ids: Sequence[str] = (), filters: Sequence[AttributeFilter] = ()
    ) -> Recommendation:
        """Return the k items whose vectors have the largest inner product with ``item_id``'s, not itself."""
        if not item_id:
            raise RequestError("invalid_argument", "item_id is empty; pass the id of a catalogue item")
        self._check_k(k)
        self._check_ids(exclude_item_ids, "exclude_item_ids")
        index = self.item_index.get(item_id)
        if index is None:
            raise RequestError("not_found", f"item {item_id!r} is not in the catalogue of model {self.version}")
        banned = np.append(self._known_items(exclude_item_ids, "exclude_item_ids"), index)
        allowed = self._allowed_items(tuple(filters))
        items, scores = self._search(np.asarray(self.item_vectors[index], dtype=np.float32), k, banned, allowed)
        return Recommendation(self.item_ids[items].tolist(), scores.tolist())

    def item_id_of(self, indices: np.ndarray) -> np.ndarray:
        return self.item_ids[indices]

    # Planning -----------------------------------------------------------------------------

    def _plan(self, query: Query) -> _Plan:
        if not query.user_id:
            raise RequestError("invalid_argument", "user_id is empty; pass the user's id, or any new id for a new user")
        self._check_k(query.k)
        recent = self._known_items(query.recent_item_ids, "recent_item_ids")
        banned = [self._known_items(query.exclude_item_ids, "exclude_item_ids")]
        allowed = self._allowed_items(query.filters)
        user = self.user_index.get(query.user_id)

        seen = _NO_ITEMS
        if user is not None:
            seen = self.seen_items[self.seen_indptr[user] : self.seen_indptr[user + 1]]
        if not query.include_seen:
            banned += [seen, recent]
        banned = [part for part in banned if len(part)]
        if not banned:
            banned_items = _NO_ITEMS
        elif len(banned) == 1:
            banned_items = banned[0]  # may be a view of seen_items, which the search only reads
        else:
            banned_items = np.concatenate(banned)
        plan = _Plan(k=query.k, vector=None, banned=banned_items, allowed=allowed, user=user)

        if self.session is not None and len(recent):
            plan.history = np.concatenate([seen[-self.history_length :], recent])
        elif user is not None:
            plan.vector = np.asarray(self.user_vectors[user], dtype=np.float32)
        else:
            plan.fallback = True
        return plan

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.limits.max_k:
            raise RequestError("invalid_argument", f"k must be between 1 and {self.limits.max_k}, got {k}")

    def _check_ids(self, ids: Sequence[str], field_name: str) -> None:
        if len(ids) > self.limits.max_ids:
            raise RequestError(
                "invalid_argument", f"{field_name} has {len(ids)} ids, more than the maximum of {self.limits.max_ids}"
            )
        if any(not item_id for item_id in ids):
            raise RequestError("invalid_argument", f"{field_name} contains an empty id; remove it")

    def _known_items(self, ids: Sequence[str], field_name: str) -> np.ndarray:
        """Return the indices of the ids in the catalogue; unknown ids are skipped, as no result can contain them."""
        if not ids:
            return _NO_ITEMS
        self._check_ids(ids, field_name)
        lookup = self.item_index.get
        return np.fromiter((i for i in map(lookup, ids) if i is not None), dtype=np.int32)

    def _allowed_items(self, filters: tuple[AttributeFilter, ...]) -> np.ndarray | None:
        """Return the read-only (n_items,) mask of the items the filters keep, or None without filters."""
        if not filters:
            return None
        try:
            allowed = self._filter_masks.get(filters)
        except TypeError:  # values passed as lists, which cannot be a key: build the mask uncached
            return self._filter_mask(filters)
        if allowed is not None:
            return allowed  # these filters passed validation when the mask was built

        allowed = self._filter_mask(filters)
        allowed.flags.writeable = False
        with self._filter_masks_lock:
            self._filter_masks[filters] = allowed
            while len(self._filter_masks) > _FILTER_MASKS:
                del self._filter_masks[next(iter(self._filter_masks))]
        return allowed

    def _filter_mask(self, filters: tuple[AttributeFilter, ...]) -> np.ndarray:
        """Validate the filters and return the (n_items,) mask of the items they keep."""
        if len(filters) > self.limits.max_filters:
            raise RequestError(
                "invalid_argument", f"{len(filters)} filters given, more than the maximum of {self.limits.max_filters}"
            )
        allowed = np.ones(self.n_items, dtype=bool)
        for item_filter in filters:
            attribute = self.attributes.get(item_filter.attribute)
            if attribute is None:
                known = ", ".join(sorted(self.attributes)) or "(none)"
                raise RequestError(
                    "invalid_argument", f"filter attribute {item_filter.attribute!r} is unknown; known attributes: {known}"
                )
            if not item_filter.allowed_values and not item_filter.excluded_values:
                raise RequestError(
                    "invalid_argument",
                    f"the filter on {item_filter.attribute!r} has neither allowed_values nor excluded_values",
                )
            n_values = len(item_filter.allowed_values) + len(item_filter.excluded_values)
            if n_values > self.limits.max_filter_values:
                raise RequestError(
                    "invalid_argument",
                    f"the filter on {item_filter.attribute!r} lists {n_values} values, more than the maximum "
                    f"of {self.limits.max_filter_values}",
                )
            # A value absent from this catalogue matches no item; "" matches items without a value.
            table = np.zeros(attribute.n_values, dtype=bool)  # code -> kept
            if not item_filter.allowed_values:
                table[:] = True
            for value in item_filter.allowed_values:
                if not value or value in attribute.value_codes:
                    table[attribute.value_codes.get(value, 0)] = True
            for value in item_filter.excluded_values:
                if not value or value in attribute.value_codes:
                    table[attribute.value_codes.get(value, 0)] = False
            allowed &= table[attribute.codes]
        return allowed

    def _embed_histories(self, plans: list[_Plan]) -> None:
        pending = [plan for plan in plans if plan.history is not None]
        if not pending:
            return
        histories, mask = md.left_pad([plan.history for plan in pending], self.history_length)
        users = np.array([self.unknown_user if p.user is None else p.user for p in pending], dtype=np.int64)
        (vectors,) = self.session.run(None, md.user_tower_feed(self.session, users, histories, mask))  # (B, D)
        for plan, vector in zip(pending, vectors):
            plan.vector = np.ascontiguousarray(vector, dtype=np.float32)

    # Search -------------------------------------------------------------------------------

    def _answer(self, plan: _Plan) -> Recommendation:
        if plan.fallback:
            items, scores = self._popular(plan.k, plan.banned, plan.allowed)
        else:
            items, scores = self._search(plan.vector, plan.k, plan.banned, plan.allowed)
        return Recommendation(self.item_ids[items].tolist(), scores.tolist(), plan.fallback)

    def _search(
        self, vector: np.ndarray, k: int, banned: np.ndarray, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the top-k allowed, non-banned items for one query vector, fetching more candidates as needed."""
        n_allowed = self.n_items if allowed is None else int(allowed.sum())
        if allowed is not None and (n_allowed <= _EXACT_SUBSET_ITEMS or n_allowed < _EXACT_SUBSET_SHARE * self.n_items):
            return self._exact(vector, k, banned, allowed)

        xq = vector.reshape(1, -1)  # (1, D)
        # Enough candidates for k survivors if banned items rank first and the filter keeps a fair share.
        fetch = min(self.n_items, int((k + len(banned)) * self.n_items / max(n_allowed, 1) * 1.2) + 1)
        while fetch <= _MAX_FETCH:
            D, I = self.index.search(xq, fetch)
            result = self._filter_candidates(I[0], D[0], k, banned, allowed)
            if result is not None or fetch >= self.n_items:
                break
            fetch = min(self.n_items, fetch * 4)
        else:
            result = None
        # An approximate index returns only the items in its probed lists or visited nodes,
        # which may be fewer than k even when the catalogue has more.
        if result is None or len(result[0]) < k:
            return self._exact(vector, k, banned, allowed)
        return result

    def _filter_candidates(
        self, I: np.ndarray, D: np.ndarray, k: int, banned: np.ndarray, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the first k candidates that survive, or None when fewer than k do and more could exist."""
        keep = I >= 0
        if len(banned):
            keep &= ~_is_banned(I, banned)
        if allowed is not None:
            keep &= allowed[np.maximum(I, 0)]
        allowed_rows = np.flatnonzero(keep)[:k]
        if len(allowed_rows) < k and len(I) < self.n_items:
            return None
        return I[allowed_rows].astype(np.int64), D[allowed_rows]

    def _exact(
        self, vector: np.ndarray, k: int, banned: np.ndarray, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        candidates = np.ones(self.n_items, dtype=bool) if allowed is None else allowed.copy()
        candidates[banned] = False
        indices = np.flatnonzero(candidates)
        if len(indices) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = np.asarray(self.item_vectors[indices] @ vector, dtype=np.float32)  # (n_candidates,)
        top = min(k, len(indices))
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.argsort(-scores[best], kind="stable")]
        return indices[best].astype(np.int64), scores[best]

    def _popular(self, k: int, banned: np.ndarray, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        ranking, shares = self.popular_items, self.popular_scores
        fetch = k + len(banned)
        while True:
            candidates = np.asarray(ranking[:fetch])
            keep = ~_is_banned(candidates, banned) if len(banned) else np.ones(len(candidates), dtype=bool)
            if allowed is not None:
                keep &= allowed[candidates]
            allowed_rows = np.flatnonzero(keep)[:k]
            if len(allowed_rows) == k or fetch >= self.n_items:
                return candidates[allowed_rows].astype(np.int64), np.asarray(shares[allowed_rows], dtype=np.float32)
            fetch = min(self.n_items, fetch * 4)

    def _warm_up(self) -> None:
        if self.n_items == 0:
            raise ModelDirError(f"model {self.arrays.root} has an empty catalogue")
        vector = np.asarray(self.item_vectors[0], dtype=np.float32)
        self.index.search(vector.reshape(1, -1), 1)
        if self.session is not None:
            plan = _Plan(k=1, vector=None, banned=np.zeros(0, dtype=np.int32), allowed=None, history=np.array([0]))
            self._embed_histories([plan])
            if plan.vector is None or plan.vector.shape != vector.shape or not np.isfinite(plan.vector).all():
                raise ModelDirError(f"the user tower of {self.arrays.root} returned an invalid vector")


def _is_banned(candidates: np.ndarray, banned: np.ndarray) -> np.ndarray:
    """Return whether each candidate item index is in ``banned``: (n_candidates,) bool."""
    if len(candidates) * len(banned) <= _PAIRWISE_PAIRS:
        return (candidates[:, None] == banned[None, :]).any(axis=1)  # (n_candidates, n_banned) -> (n_candidates,)
    return np.isin(candidates, banned)


def _read_index(arrays: md.ModelArrays) -> ItemIndex:
    path = arrays.index_path
    info = arrays.manifest["index"]
    # Flat codes (of flat and HNSW indexes) are memory-mapped in place, so worker processes
    # share one copy.
    # NOTE: each worker keeps its own copy of IVF inverted lists. FAISS can map them from the
    # file (IO_FLAG_MMAP), but its on-disk lists made one search about 30 times slower in a
    # measurement on 10,000 items with FAISS 1.15.
    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    except RuntimeError:
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ModelDirError(f"model file {path} is not a readable FAISS index ({exc})") from None
    try:
        return ItemIndex.from_manifest(index, arrays.item_vectors, info)
    except KeyError as exc:
        raise ModelDirError(
            f"the index entry of {arrays.root / md.MANIFEST_FILE} lacks the search parameter {exc}; export the model again"
        ) from None
    except ValueError as exc:
        raise ModelDirError(f"model file {path} does not match the catalogue: {exc}") from None


def _open_user_tower(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread per run: the server gets its parallelism from worker processes, and
    # onnxruntime's own pool would compete with them for the same cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad model file
        raise ModelDirError(f"model file {path} is not a loadable ONNX model ({exc})") from None
    unknown = sorted({node.name for node in session.get_inputs()} - set(md.USER_TOWER_INPUTS))
    if unknown:
        raise ModelDirError(
            f"model file {path} declares inputs {unknown}; a user tower takes only {', '.join(md.USER_TOWER_INPUTS)}"
        )
    return session
