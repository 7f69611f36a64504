"""Clients of the test servers, and model directories written from given vectors."""

from __future__ import annotations

from pathlib import Path

import faiss
import grpc
import numpy as np

from recsearch import model_dir as md
from recsearch.export.index import IndexConfig, build_index
from serving._proto.recsearch.v1 import recommender_pb2 as pb
from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc


def stub_for(port: int) -> tuple[grpc.Channel, pb_grpc.RecommenderServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, pb_grpc.RecommenderServiceStub(channel)


def status_of(call, request, timeout: float = 10, **kwargs) -> grpc.StatusCode:
    try:
        call(request, timeout=timeout, **kwargs)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK




def write_vector_model(out: Path, item_vectors: np.ndarray, user_vectors: np.ndarray, config: IndexConfig) -> dict:
    """Write a MODEL_DIR around given vectors, as export would: each user has seen item 0, popularity is id order."""
    n_items, n_users = len(item_vectors), len(user_vectors)
    choice = build_index(item_vectors, user_vectors, config)
    arrays = {
        md.ITEM_IDS: np.array([f"i{i}" for i in range(n_items)]),
        md.USER_IDS: np.array([f"u{u}" for u in range(n_users)]),
        md.ITEM_VECTORS: item_vectors,
        md.USER_VECTORS: user_vectors,
        md.SEEN_INDPTR: np.arange(n_users + 1, dtype=np.int64),
        md.SEEN_ITEMS: np.zeros(n_users, dtype=np.int32),
        md.POPULAR_ITEMS: np.arange(n_items, dtype=np.int32),
        md.POPULAR_SCORES: np.full(n_items, 1.0 / n_items, dtype=np.float32),
    }
    manifest = {
        "source": {"synthetic": True}, "config": {}, "metrics": {},
        "n_users": n_users, "n_items": n_items, "embedding_dim": item_vectors.shape[1], "user_tower": None,
        "index": {"file": md.ITEM_INDEX, **choice.manifest()}, "attributes": [],
    }
    blobs = {md.ITEM_INDEX: faiss.serialize_index(choice.index).tobytes()}
    return md.write_model_dir(out, arrays=arrays, blobs=blobs, manifest=manifest)


__all__ = ["pb", "pb_grpc", "status_of", "stub_for", "write_vector_model"]
