"""Training of one two-tower configuration with Lightning, on one process or many (DDP)."""

from recsearch.train.api import TrainResult, configure_threads, load_trained_model, train_model
from recsearch.train.config import MONITOR, RunConfig, TrainConfig
from recsearch.train.data import TrainingPairs, TwoTowerDataModule, UserHistory, catalog_schema
from recsearch.train.module import TwoTowerModule
from recsearch.train.scoring import TwoTowerScorer

__all__ = [
    "MONITOR",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingPairs",
    "TwoTowerDataModule",
    "TwoTowerModule",
    "TwoTowerScorer",
    "UserHistory",
    "catalog_schema",
    "configure_threads",
    "load_trained_model",
    "train_model",
]
