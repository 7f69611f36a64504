"""``train_model``: fit one configuration on a dataset and write the run directory.

A run directory contains ``config.json`` (the RunConfig), ``model.pt`` (the network's
state dict, loadable without Lightning), ``checkpoints/best.ckpt`` (Lightning, weights
only) and ``metrics.json`` (validation history, final validation and test metrics).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from recsearch.data.load import Dataset, load_dataset
from recsearch.errors import InputError
from recsearch.evaluate.protocol import evaluation_split, evaluate_split
from recsearch.evaluate.ranking import DEFAULT_KS
from recsearch.models.two_tower import TwoTowerModel
from recsearch.train.config import MONITOR, RunConfig
from recsearch.train.data import TwoTowerDataModule, UserHistory, catalog_schema
from recsearch.train.module import TwoTowerModule
from recsearch.train.scoring import TwoTowerScorer

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class TrainResult:
    """Outputs of one training run. Metrics are filled on the global-zero process only."""

    run_dir: Path
    monitor: str  # name of the logged validation metric, "val_ndcg@10"
    best_score: float | None  # best value of ``monitor``
    best_epoch: int | None
    n_epochs: int
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # logged metrics per validation epoch
    validation_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    is_global_zero: bool = True


class _MetricHistory(Callback):
    """Keeps the metrics logged in every epoch: the training loss and the validation metrics."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook, so both are logged by now.
        row = {name: float(value) for name, value in trainer.callback_metrics.items()}
        row["epoch"] = trainer.current_epoch
        self.epochs.append(row)


def configure_threads(n_processes: int = 1) -> int:
    """Give each local process an equal share of the CPU cores for torch and FAISS; return the share.

    Both bring their own OpenMP pool, so leaving the defaults would start more threads
    than there are cores as soon as several processes (DDP ranks) or both libraries run.

    NOTE: torch's GNU OpenMP pool busy-waits between parallel regions. On an idle 2-core
    machine a 2-thread MF-BPR epoch on ML-1M took 0.38 s against 0.64 s with 1 thread,
    but with another busy process on the machine it ran 5-30x slower than 1 thread.
    OMP_WAIT_POLICY=PASSIVE, set before torch loads, avoids that slowdown but took 0.74 s
    when idle. No share is chosen from the machine's load.
    """
    n_threads = max(1, (os.cpu_count() or 1) // max(n_processes, 1))
    torch.set_num_threads(n_threads)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(n_threads)
    return n_threads


def _uses_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def build_trainer(
    config: RunConfig,
    run_dir: Path,
    *,
    callbacks: Sequence[Callback] = (),
    accelerator: str = "auto",
    devices: int | str = 1,
    num_nodes: int = 1,
    enable_progress_bar: bool = False,
    select_best: bool = True,
) -> tuple[pl.Trainer, ModelCheckpoint | None, _MetricHistory]:
    """Return a Trainer with early stopping and best-checkpoint saving on ``val_ndcg@10``.

    With ``select_best=False`` the Trainer runs exactly ``max_epochs`` epochs with no
    validation, checkpoint or early stopping, as a refit on all data needs.

    More than one device or node selects Lightning's DDP strategy (NCCL on GPUs, gloo
    on CPUs). GPUs train in bf16 mixed precision, CPUs in float32.
    """
    history = _MetricHistory()
    distributed = (isinstance(devices, int) and devices > 1) or num_nodes > 1
    common = dict(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if distributed else "auto",
        precision="bf16-mixed" if _uses_gpu(accelerator) else "32-true",
        max_epochs=config.train.max_epochs,
        reload_dataloaders_every_n_epochs=1,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        deterministic=False,
        default_root_dir=run_dir,
    )
    if not select_best:
        trainer = pl.Trainer(
            callbacks=[history, *callbacks], limit_val_batches=0, enable_checkpointing=False, **common
        )
        return trainer, None, history

    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        save_weights_only=True,
        enable_version_counter=False,
    )
    stopping = EarlyStopping(monitor=MONITOR, mode="max", patience=config.train.patience)
    trainer = pl.Trainer(callbacks=[checkpoint, stopping, history, *callbacks], **common)
    return trainer, checkpoint, history


def train_model(
    dataset: Dataset | str | Path,
    config: RunConfig,
    run_dir: str | Path,
    *,
    callbacks: Sequence[Callback] = (),
    accelerator: str = "auto",
    devices: int | str = 1,
    num_nodes: int = 1,
    evaluate_test: bool = True,
    enable_progress_bar: bool = False,
    select_best: bool = True,
) -> TrainResult:
    """Train ``config`` on ``dataset`` and write the run directory; return its metrics.

    ``callbacks`` are added to the Trainer's own (an Optuna pruning callback watching
    ``TrainResult.monitor``, for example). The best epoch's weights by ``val_ndcg@10``
    are kept, then ranked on validation and, with ``evaluate_test``, on test.

    ``select_best=False`` is the refit mode: exactly ``config.train.max_epochs`` epochs
    with no validation, and the final weights are kept. The dataset's validation
    split may then be empty (train on train plus validation by merging them first).
    """
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset)
    if select_best and len(dataset.validation) == 0:
        raise InputError(
            f"the validation split of {dataset.root} is empty, so early stopping and the best epoch "
            "cannot be chosen; re-ingest with a larger --validation-fraction (or a log with more "
            "interactions per user), or refit for a fixed epoch count with select_best=False"
        )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.train.seed, workers=True, verbose=False)
    n_local = devices if isinstance(devices, int) and not _uses_gpu(accelerator) else 1
    configure_threads(n_local)

    schema = catalog_schema(dataset)
    network = TwoTowerModel(config.model, schema)
    datamodule = TwoTowerDataModule(dataset, config)
    datamodule.setup("fit")
    validation = evaluation_split(dataset, "validation")
    validation_history = None
    if network.uses_history:
        validation_history, _ = UserHistory.from_tables(dataset.n_users, dataset.train)
    module = TwoTowerModule(
        network,
        config,
        item_log_probability=datamodule.pairs.item_log_probability(dataset.n_items),
        validation=validation,
        validation_history=validation_history,
    )
    trainer, checkpoint, history = build_trainer(
        config,
        run_dir,
        callbacks=callbacks,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        enable_progress_bar=enable_progress_bar,
        select_best=select_best,
    )

    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_seconds = time.perf_counter() - started
    best_score = None
    if checkpoint is not None and checkpoint.best_model_score is not None:
        best_score = float(checkpoint.best_model_score)
    best_epoch = _best_epoch(history.epochs, best_score)
    if not trainer.is_global_zero:
        return TrainResult(run_dir, MONITOR, best_score, best_epoch, trainer.current_epoch, train_seconds, is_global_zero=False)

    if checkpoint is not None and checkpoint.best_model_path:
        state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    network = module.network.cpu().eval()

    validation_metrics: dict[str, float] = {}
    if select_best and len(dataset.validation):
        validation_metrics = evaluate_split(
            TwoTowerScorer(network, validation_history), validation, ks=DEFAULT_KS
        ).summary()
    test_metrics: dict[str, float] = {}
    if evaluate_test and len(dataset.test):
        test = evaluation_split(dataset, "test")
        test_history = None
        if network.uses_history:
            test_history, _ = UserHistory.from_tables(dataset.n_users, dataset.train, dataset.validation)
        test_metrics = evaluate_split(TwoTowerScorer(network, test_history), test, ks=DEFAULT_KS).summary()

    result = TrainResult(
        run_dir=run_dir,
        monitor=MONITOR,
        best_score=best_score,
        best_epoch=best_epoch,
        n_epochs=trainer.current_epoch,
        train_seconds=train_seconds,
        history=history.epochs,
        validation_metrics=validation_metrics,
        test_metrics=test_metrics,
    )
    _write_run(run_dir, config, network, result, dataset)
    if best_score is None:  # a refit, or a run stopped before its first validation
        logger.info("trained %d epochs in %.1f s without validation", result.n_epochs, train_seconds)
    else:
        logger.info(
            "trained %d epochs in %.1f s; best %s %.4f at epoch %s",
            result.n_epochs, train_seconds, MONITOR, best_score, best_epoch,
        )
    return result


def _best_epoch(epochs: list[dict[str, float]], best_score: float | None) -> int | None:
    for row in epochs:
        if best_score is not None and abs(row.get(MONITOR, float("nan")) - best_score) < 1e-9:
            return int(row["epoch"])
    return None


def _write_run(run_dir: Path, config: RunConfig, network: TwoTowerModel, result: TrainResult, dataset: Dataset) -> None:
    (run_dir / CONFIG_FILE).write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    torch.save(network.state_dict(), run_dir / MODEL_FILE)
    metrics: dict[str, Any] = {
        "monitor": result.monitor,
        "best_score": result.best_score,
        "best_epoch": result.best_epoch,
        "n_epochs": result.n_epochs,
        "train_seconds": result.train_seconds,
        "history": result.history,
        "validation": result.validation_metrics,
        "test": result.test_metrics,
        "dataset": {
            "root": str(dataset.root),
            "fingerprint": dataset.manifest.get("fingerprint"),
            "training_splits": dataset.manifest.get("training_splits", ["train"]),
        },
    }
    (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


def load_trained_model(run_dir: str | Path, dataset: Dataset) -> TwoTowerModel:
    """Rebuild the network of a run directory on ``dataset`` and load its weights, without Lightning.

    Frequency-tiered embeddings are laid out from the training split's frequencies, so the
    network is built on the splits the run trained on (recorded in its metrics.json).
    """
    run_dir = Path(run_dir)
    config = RunConfig.from_json((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    metrics_path = run_dir / METRICS_FILE
    if metrics_path.is_file():
        splits = json.loads(metrics_path.read_text(encoding="utf-8")).get("dataset", {}).get("training_splits")
        if splits and splits != dataset.manifest.get("training_splits", ["train"]):
            dataset = dataset.training_view(list(splits))
    network = TwoTowerModel(config.model, catalog_schema(dataset))
    network.load_state_dict(torch.load(run_dir / MODEL_FILE, map_location="cpu", weights_only=True))
    return network.eval()
