"""A user tower without a user-id embedding: the ONNX exporter drops its unused user input."""

from __future__ import annotations

import numpy as np
import onnxruntime

from recsearch import model_dir as md
from recsearch.export import export_model
from recsearch.models import ItemTowerConfig, LossConfig, ModelConfig, UserTowerConfig
from recsearch.train import RunConfig, train_model
from serving._proto.recsearch.v1 import recommender_pb2 as pb
from serving.server import BackgroundServer, ServerOptions
from tests.export.fixtures import FAST
from tests.serving.helpers import stub_for

HISTORY_ONLY = ModelConfig(
    embedding_dim=16,
    item_tower=ItemTowerConfig(id_dim=16),
    user_tower=UserTowerConfig(use_user_id=False, history="mean", history_length=5),
    loss=LossConfig(kind="sampled_softmax"),
)


def test_history_only_tower_exports_and_serves(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    train_model(data_dir, RunConfig(model=HISTORY_ONLY, train=FAST), run_dir, evaluate_test=False)
    model_dir = tmp_path / "model"
    export_model(run_dir, model_dir)

    session = onnxruntime.InferenceSession(str(model_dir / md.USER_TOWER), providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == ["history", "history_mask"]
    assert md.read_manifest(model_dir)["user_tower"]["inputs"] == ["history", "history_mask"]

    items = np.load(model_dir / md.ITEM_IDS, allow_pickle=False)
    item_vectors = np.load(model_dir / md.ITEM_VECTORS, allow_pickle=False)
    recent = [str(items[3]), str(items[7])]
    server = BackgroundServer(ServerOptions(model_dir, port=0, reload_interval=0))
    try:
        channel, stub = stub_for(server.port)
        with channel:
            response = stub.Recommend(pb.RecommendRequest(user_id="someone-new", k=5, recent_item_ids=recent), timeout=10)
    finally:
        server.stop()
    assert not response.fallback
    assert len(response.items) == 5
    # Mean pooling of the two recent items' vectors, scored against every item: the server's top item.
    user = item_vectors[[3, 7]].mean(axis=0)
    scores = item_vectors @ user
    scores[[3, 7]] = -np.inf
    assert response.items[0].item_id == str(items[int(np.argmax(scores))])
