import json
import shutil

import faiss
import numpy as np
import pytest
import torch

from recsearch import model_dir as md
from recsearch.data import load_dataset
from recsearch.errors import InputError
from recsearch.export import ExportConfig, IndexConfig, build_index, export_model, find_model_run, recall_at_k
from recsearch.export.pipeline import last_items, user_item_history
from recsearch.item_index import ItemIndex
from recsearch.train.config import RECONSTRUCTION_MODEL, RunConfig, TrainConfig
from serving.model import Query, ServingModel
from recsearch.train import load_trained_model, train_model


def test_manifest_describes_model(history_model_dir, history_run):
    manifest = md.read_manifest(history_model_dir)
    metrics = json.loads((history_run / "metrics.json").read_text())
    assert manifest["source"]["data_fingerprint"] == metrics["dataset"]["fingerprint"]
    assert manifest["config"] == json.loads((history_run / "config.json").read_text())
    assert manifest["metrics"]["test/ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"])
    assert manifest["index"]["kind"] == "flat"
    assert manifest["index"]["recall_at_10"] == 1.0
    assert manifest["user_tower"]["history_length"] == 5
    assert manifest["attributes"] == ["brand", "category"]
    assert set(manifest["files"]) >= {md.ITEM_INDEX, md.USER_TOWER, md.ITEM_VECTORS, md.SEEN_ITEMS, md.POPULAR_ITEMS}


def test_export_verifies_after_writing(history_model_dir):
    loaded = md.load_model_dir(history_model_dir, verify=True)
    assert loaded.item_vectors.shape == (len(loaded.item_ids), 16)
    assert loaded.user_vectors.dtype == np.float32


def test_vectors_match_torch_model(history_model_dir, history_run, data_dir):
    dataset = load_dataset(data_dir)
    network = load_trained_model(history_run, dataset)
    loaded = md.load_model_dir(history_model_dir)
    with torch.no_grad():
        items = network.all_item_vectors().numpy()
        users = np.arange(10)
        indptr, seen = user_item_history(dataset)
        history, mask = last_items(indptr, seen, users, network.history_length)
        expected_users = network.user_vectors(torch.from_numpy(users), torch.from_numpy(history), torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(loaded.item_vectors, items, atol=1e-6)
    np.testing.assert_allclose(loaded.user_vectors[:10], expected_users, atol=1e-6)


def test_seen_items_hold_every_split(history_model_dir, data_dir):
    dataset = load_dataset(data_dir)
    loaded = md.load_model_dir(history_model_dir)
    user = 3
    row = set(loaded.seen_items[loaded.seen_indptr[user] : loaded.seen_indptr[user + 1]].tolist())
    expected = set()
    for table in (dataset.train, dataset.validation, dataset.test):
        expected |= set(table.item[table.user == user].tolist())
    assert row == expected


def test_attribute_values_name_categories(history_model_dir, data_dir):
    dataset = load_dataset(data_dir)
    loaded = md.load_model_dir(history_model_dir)
    codes, values = loaded.attributes["category"]
    np.testing.assert_array_equal(codes, dataset.item_features["category"])
    assert values[0] == ""
    assert all(value for value in values[1:])


def test_hnsw_reaches_target_recall(mf_model_dir):
    manifest = md.read_manifest(mf_model_dir)
    index = manifest["index"]
    assert index["kind"] == "hnsw"
    assert index["recall_at_10"] >= 0.95
    assert index["params"]["efSearch"] in [row["efSearch"] for row in index["tried"]]
    assert index["search_latency_us"]["p50"] > 0


def test_build_index_recall_matches_exact_search():
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(3_000, 16)).astype(np.float32)
    xq = rng.normal(size=(200, 16)).astype(np.float32)
    choice = build_index(xb, xq, IndexConfig(kind="hnsw", target_recall=0.9))
    exact = faiss.IndexFlatIP(16)
    exact.add(xb)
    _, I_exact = exact.search(xq, 10)
    _, I = ItemIndex.from_manifest(choice.index, xb, choice.manifest()).search(xq, 10)
    assert recall_at_k(I, I_exact) == pytest.approx(choice.recall_at_10)
    assert choice.recall_at_10 >= 0.9


def test_ivfpq_rejects_tiny_catalogue():
    xb = np.ones((100, 8), dtype=np.float32)
    with pytest.raises(InputError, match="IVF-PQ"):
        build_index(xb, xb[:5], IndexConfig(kind="ivfpq"))


def test_find_model_run_prefers_final(history_run, tmp_path):
    for name in ("winner", "refit", "final"):
        shutil.copytree(history_run, tmp_path / name)
        assert find_model_run(tmp_path) == tmp_path / name
    with pytest.raises(InputError, match="no trained model found"):
        find_model_run(history_run / "checkpoints")


def test_export_rejects_moved_dataset(history_run, tmp_path):
    with pytest.raises(InputError, match="not found"):
        export_model(history_run, tmp_path / "out", ExportConfig(data_dir=tmp_path / "nowhere"))
    assert not (tmp_path / "out").exists()


def test_export_cli_writes_link(history_run, tmp_path):
    from recsearch.cli.main import main

    status = main(["export", str(history_run), "--out", str(tmp_path / "v1"), "--link", str(tmp_path / "current")])
    assert status == 0
    assert (tmp_path / "current").resolve() == (tmp_path / "v1").resolve()
    md.load_model_dir(tmp_path / "current")


def test_reconstruction_model_serves_session_requests(data_dir, tmp_path):
    # A linear autoencoder reads up to 2,048 items through the ONNX tower; a new user's
    # recent items must give the torch model's own ranking.
    config = RunConfig(model=RECONSTRUCTION_MODEL, train=TrainConfig(users_per_batch=64, max_epochs=2))
    train_model(data_dir, config, tmp_path / "run", evaluate_test=False)
    export_model(tmp_path / "run", tmp_path / "model", ExportConfig(index=IndexConfig(kind="flat")))
    served = ServingModel.load(tmp_path / "model")
    assert served.history_length == 2048

    network = load_trained_model(tmp_path / "run", load_dataset(data_dir))
    recent = np.array([5, 17, 40, 41])
    history = torch.zeros(1, 2048, dtype=torch.int64)
    history[0, -4:] = torch.from_numpy(recent)
    mask = torch.zeros(1, 2048, dtype=torch.bool)
    mask[0, -4:] = True
    with torch.no_grad():
        scores = (network.user_vectors(torch.zeros(1, dtype=torch.int64), history, mask) @ network.all_item_vectors().T)[0]
    scores[recent] = -np.inf
    expected = torch.topk(scores, 10).indices.numpy()

    item_ids = np.asarray(md.load_model_dir(tmp_path / "model").item_ids)
    result = served.recommend(Query(user_id="someone new", k=10, recent_item_ids=tuple(item_ids[recent])))
    assert not result.fallback
    np.testing.assert_array_equal(result.item_ids, item_ids[expected])
