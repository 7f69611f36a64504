"""``export_model``: turn a trained run into a MODEL_DIR that the server loads without torch.

Dimension legend: B batch of users, N history length, D embedding dimension.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import polars as pl
import torch

from recsearch import model_dir as md
from recsearch.data import Dataset, load_dataset
from recsearch.data.layout import FEATURE_INDEX, FEATURE_VALUE, DatasetPaths
from recsearch.errors import InputError
from recsearch.export.index import IndexConfig, build_index
from recsearch.export.onnx import OUTPUT_NAME, declared_inputs, export_user_tower
from recsearch.models.two_tower import TwoTowerModel
from recsearch.train.api import CONFIG_FILE, METRICS_FILE, MODEL_FILE, load_trained_model

logger = logging.getLogger(__name__)

# A search RUN_DIR contains several trained models; export takes the one trained on the most data.
RUN_PREFERENCE = ("final", "refit", "winner")
EVALUATION_FILE = "evaluation.json"
_USER_BATCH = 8_192


@dataclass(frozen=True)
class ExportConfig:
    """Options of ``export_model``: the index choice, the dataset location and overwriting."""

    index: IndexConfig = field(default_factory=IndexConfig)
    data_dir: Path | None = None  # the DATA_DIR, when it moved since training; default: from metrics.json
    overwrite: bool = False


def find_model_run(run_dir: str | Path) -> Path:
    """Return the run directory to export: RUN_DIR/final, refit or winner of a search, else RUN_DIR itself."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"RUN_DIR {run_dir} not found; pass the --out of `recsearch search` or `recsearch train`")
    for name in RUN_PREFERENCE:
        if (run_dir / name / MODEL_FILE).is_file():
            return run_dir / name
    if (run_dir / MODEL_FILE).is_file():
        return run_dir
    raise InputError(
        f"no trained model found in {run_dir}: none of final/, refit/, winner/ or the directory itself has {MODEL_FILE}"
    )


def export_model(run_dir: str | Path, out: str | Path, config: ExportConfig = ExportConfig()) -> dict[str, Any]:
    """Export the best model of ``run_dir`` to the MODEL_DIR ``out``; return its manifest."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    model_run = find_model_run(run_dir)
    metrics = _read_json(model_run / METRICS_FILE)
    dataset, view = _load_training_data(model_run, metrics, config.data_dir)
    network = load_trained_model(model_run, view)
    logger.info("exporting %s trained on %s", model_run, ", ".join(view.manifest.get("training_splits", ["train"])))

    with torch.no_grad():
        item_vectors = network.all_item_vectors().numpy().astype(np.float32)  # (n_items, D)
    seen_indptr, seen_items = user_item_history(dataset)
    user_vectors = compute_user_vectors(network, seen_indptr, seen_items)  # (n_users, D)
    popular_items, popular_scores = popularity_ranking(dataset)

    choice = build_index(item_vectors, user_vectors, config.index)
    logger.info(
        "index %s %s: recall@10 %.3f, p50 %.0f us per query (exact %.0f us)",
        choice.kind, choice.params, choice.recall_at_10, choice.latency_us["p50"], choice.exact_latency_us["p50"],
    )

    arrays: dict[str, np.ndarray] = {
        md.ITEM_IDS: np.asarray(dataset.item_ids, dtype=str),
        md.USER_IDS: np.asarray(dataset.user_ids, dtype=str),
        md.ITEM_VECTORS: item_vectors,
        md.USER_VECTORS: user_vectors,
        md.SEEN_INDPTR: seen_indptr,
        md.SEEN_ITEMS: seen_items,
        md.POPULAR_ITEMS: popular_items,
        md.POPULAR_SCORES: popular_scores,
    }
    attributes = item_attributes(dataset)
    for name, (codes, values) in attributes.items():
        codes_file, values_file = md.attribute_files(name)
        arrays[codes_file] = codes
        arrays[values_file] = values
    blobs = {md.ITEM_INDEX: faiss.serialize_index(choice.index).tobytes()}
    user_tower = None
    if network.uses_history:
        blobs[md.USER_TOWER] = export_user_tower(network)
        user_tower = {
            "file": md.USER_TOWER,
            "inputs": declared_inputs(blobs[md.USER_TOWER]),
            "output": OUTPUT_NAME,
            "history_length": network.history_length,
            "unknown_user_index": network.n_users,
        }

    manifest = {
        "source": {
            "run_dir": str(run_dir.resolve()),
            "model_run": str(model_run.resolve()),
            "data_dir": str(dataset.root),
            "data_fingerprint": dataset.manifest.get("fingerprint"),
            "training_splits": view.manifest.get("training_splits", ["train"]),
        },
        "config": _read_json(model_run / CONFIG_FILE),
        "metrics": offline_metrics(run_dir, metrics),
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "embedding_dim": int(item_vectors.shape[1]),
        "user_tower": user_tower,
        "index": {"file": md.ITEM_INDEX, **choice.manifest()},
        "attributes": sorted(attributes),
    }
    written = md.write_model_dir(out, arrays=arrays, blobs=blobs, manifest=manifest, overwrite=config.overwrite)
    logger.info("exported %s as version %s in %.1f s", out, written["model_version"], time.perf_counter() - started)
    return written


def user_item_history(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Return every user's items of all splits as CSR rows ordered by time, oldest first.

    Pairs without timestamps keep their order: train, then validation, then test.
    """
    tables = (dataset.train, dataset.validation, dataset.test)
    user = np.concatenate([table.user for table in tables]).astype(np.int64)
    item = np.concatenate([table.item for table in tables]).astype(np.int32)
    keys = [np.arange(len(user))]
    if all(table.last_time is not None for table in tables):
        keys.append(np.concatenate([table.last_time for table in tables]))
    keys.append(user)
    order = np.lexsort(keys)  # the last key is the primary one
    indptr = np.zeros(dataset.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=dataset.n_users), out=indptr[1:])
    return indptr, item[order]


def last_items(indptr: np.ndarray, items: np.ndarray, users: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each user's ``length`` latest items, left-padded: (B, N) int64 items and bool mask."""
    positions = indptr[users + 1][:, None] + np.arange(-length, 0)  # (B, N)
    mask = positions >= indptr[users][:, None]  # (B, N)
    history = items[np.clip(positions, 0, max(len(items) - 1, 0))].astype(np.int64) * mask
    return history, mask


def compute_user_vectors(network: TwoTowerModel, seen_indptr: np.ndarray, seen_items: np.ndarray) -> np.ndarray:
    """Embed every known user; a history encoder reads the user's latest known items."""

    def history(users: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        items, mask = last_items(seen_indptr, seen_items, users.numpy(), length)
        return torch.from_numpy(items), torch.from_numpy(mask)

    parts = []
    for start in range(0, network.n_users, _USER_BATCH):
        users = torch.arange(start, min(start + _USER_BATCH, network.n_users))
        parts.append(network.embed_users(users, history).numpy())
    if not parts:
        return np.zeros((0, network.config.embedding_dim), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)  # (n_users, D)


def popularity_ranking(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Return the items ranked by the number of users who interacted with them, and those counts' shares."""
    counts = np.zeros(dataset.n_items, dtype=np.int64)
    for table in (dataset.train, dataset.validation, dataset.test):
        counts += np.bincount(table.item, minlength=dataset.n_items)
    order = np.argsort(-counts, kind="stable").astype(np.int32)
    shares = counts[order] / max(int(counts.sum()), 1)
    return order, shares.astype(np.float32)


def item_attributes(dataset: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return each categorical item feature as (per-item codes, values); code 0 is the missing value ""."""
    paths = DatasetPaths(dataset.root)
    attributes = {}
    for name, codes in dataset.item_features.items():
        size = dataset.feature_cardinality[f"item.{name}"]
        values = np.full(size, "", dtype=object)
        path = paths.feature_vocabulary("item", name)
        if path.is_file():
            vocabulary = pl.read_parquet(path, columns=[FEATURE_VALUE, FEATURE_INDEX])
            for value, index in vocabulary.iter_rows():
                if 0 < index < size and value is not None:
                    values[index] = str(value)
        else:
            logger.warning("feature vocabulary %s is missing; filters on %s must use its codes", path, name)
            values[1:] = [str(code) for code in range(1, size)]
        attributes[name] = (np.asarray(codes, dtype=np.int32), values.astype(str))
    return attributes


def offline_metrics(run_dir: Path, metrics: dict[str, Any]) -> dict[str, float]:
    """Flatten the run's metrics into "split/metric" names, adding the search's test scores when present."""
    flat: dict[str, float] = {}
    for split in ("validation", "test"):
        for name, value in (metrics.get(split) or {}).items():
            flat[f"{split}/{name}"] = float(value)
    evaluation_path = run_dir / EVALUATION_FILE
    if evaluation_path.is_file():
        evaluation = _read_json(evaluation_path)
        for section in ("winner_test", "refit_test"):
            for name, value in (evaluation.get(section) or {}).items():
                flat[f"{section}/{name}"] = float(value)
    return flat


def _load_training_data(model_run: Path, metrics: dict[str, Any], data_dir: Path | None) -> tuple[Dataset, Dataset]:
    recorded = metrics.get("dataset") or {}
    root = data_dir or (Path(recorded["root"]) if recorded.get("root") else None)
    if root is None:
        raise InputError(f"{model_run / METRICS_FILE} does not name its dataset; pass --data DATA_DIR")
    if not Path(root).is_dir():
        raise InputError(f"the run's dataset directory {root} not found; pass its new place with --data DATA_DIR")
    dataset = load_dataset(root)
    expected = recorded.get("fingerprint")
    actual = dataset.manifest.get("fingerprint")
    if expected and actual and expected != actual:
        raise InputError(
            f"dataset {root} has fingerprint {actual}, but the run was trained on {expected}; "
            "pass the DATA_DIR the run was trained on with --data"
        )
    view = dataset.training_view(list(recorded.get("training_splits", ["train"])))
    return dataset, view


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path} is missing; the run directory is incomplete")
    return json.loads(path.read_text(encoding="utf-8"))
