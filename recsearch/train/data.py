"""Training data as tensors: time-ordered user histories (CSR) and whole batches drawn by index.

Dimension legend: B batch, N history length, P training pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset as TorchDataset

from recsearch.data.load import Dataset, Interactions
from recsearch.models.losses import Batch
from recsearch.models.schema import CatalogSchema
from recsearch.train.config import RunConfig


def catalog_schema(dataset: Dataset) -> CatalogSchema:
    """Return what a model needs from ``dataset``: sizes, item features and training frequencies."""
    return CatalogSchema(
        n_users=dataset.n_users,
        n_items=dataset.n_items,
        item_frequency=np.bincount(dataset.train.item, minlength=dataset.n_items).astype(np.float64),
        user_frequency=np.bincount(dataset.train.user, minlength=dataset.n_users).astype(np.float64),
        item_features=dict(dataset.item_features),
        feature_cardinality={
            name: dataset.feature_cardinality[f"item.{name}"] for name in dataset.item_features
        },
    )


@dataclass(frozen=True)
class UserHistory:
    """Every user's items, oldest first, as CSR rows (users are rows)."""

    indptr: torch.Tensor  # (n_users + 1,) int64
    items: torch.Tensor  # (P,) int64

    @classmethod
    def from_tables(cls, n_users: int, *tables: Interactions) -> tuple["UserHistory", np.ndarray]:
        """Order the pairs of ``tables`` by user, then time, then table order.

        Returns the history and the permutation that puts the concatenated pairs in that
        order. Without timestamps the order within a user is the order of the tables' rows.
        """
        user = np.concatenate([table.user for table in tables]).astype(np.int64)
        item = np.concatenate([table.item for table in tables]).astype(np.int64)
        row = np.arange(user.shape[0])
        keys = [row]
        if all(table.last_time is not None for table in tables):
            keys.append(np.concatenate([table.last_time for table in tables]))
        keys.append(user)
        order = np.lexsort(keys)  # last key is the primary one
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(user, minlength=n_users), out=indptr[1:])
        return cls(torch.as_tensor(indptr), torch.as_tensor(item[order])), order

    def window(self, end: torch.Tensor, user: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the ``length`` items before sequence position ``end`` of each user, left-padded.

        ``end`` (B,) indexes ``items``; positions before the user's row start are padding.
        """
        offsets = torch.arange(-length, 0, device=end.device)  # (N,)
        positions = end.unsqueeze(1) + offsets  # (B, N)
        mask = positions >= self.indptr[user].unsqueeze(1)  # (B, N)
        history = self.items[positions.clamp_min(0)] * mask  # (B, N), padding as item 0
        return history, mask

    def last_items(self, user: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return each user's ``length`` most recent items, left-padded: (B, N) items and mask."""
        return self.window(self.indptr[user + 1], user, length)

    def to(self, device: torch.device) -> "UserHistory":
        return UserHistory(self.indptr.to(device), self.items.to(device))


class TrainingPairs:
    """The training pairs in history order, turned into batches by index without Python loops."""

    def __init__(self, dataset: Dataset, config: RunConfig) -> None:
        self.history, order = UserHistory.from_tables(dataset.n_users, dataset.train)
        self.user = torch.as_tensor(dataset.train.user[order], dtype=torch.int64)  # (P,)
        self.item = self.history.items  # (P,) the pair at position j is the j-th history entry
        self.weight = None
        if config.train.example_weighting == "log":
            weight = 1.0 + np.log(np.maximum(dataset.train.weight[order], 1.0))
            self.weight = torch.as_tensor(weight, dtype=torch.float32)
        tower = config.model.user_tower
        self.history_length = tower.history_length if tower.history != "none" else 0

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def batch(self, index: torch.Tensor) -> Batch:
        """Gather the pairs at ``index`` (B,) with each user's items before that pair."""
        user = self.user[index]
        history = mask = None
        if self.history_length:
            # The items before the pair's own position, so the target never leaks into its history.
            history, mask = self.history.window(index, user, self.history_length)
        weight = None if self.weight is None else self.weight[index]
        return Batch(user=user, item=self.item[index], weight=weight, history=history, history_mask=mask)

    def item_log_probability(self, n_items: int) -> torch.Tensor:
        """Return (n_items,) log share of the training pairs per item, for the logQ correction."""
        counts = torch.bincount(self.item, minlength=n_items).clamp_min(1).double()
        return torch.log(counts / counts.sum()).float()


def _keep(value: object) -> object:
    """Pass a prepared batch through the DataLoader unchanged (a module-level function pickles)."""
    return value


class _ShuffledBatches(TorchDataset):
    """Batch i of an epoch: pairs perm[i * B : (i + 1) * B] of a permutation drawn from the epoch's seed."""

    def __init__(self, pairs: TrainingPairs, batch_size: int, seed: int) -> None:
        self.pairs = pairs
        self.batch_size = batch_size
        generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(len(pairs), generator=generator)

    def __len__(self) -> int:
        return (len(self.pairs) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, index: int) -> Batch:
        return self.pairs.batch(self.permutation[index * self.batch_size : (index + 1) * self.batch_size])


class _UserChunks(TorchDataset):
    """The validation users cut into one chunk per process, so DDP ranks share the work without overlap."""

    def __init__(self, users: np.ndarray, n_chunks: int) -> None:
        self.chunks = np.array_split(users, n_chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.chunks[index]


class TwoTowerDataModule(pl.LightningDataModule):
    """Training batches of a loaded dataset and the validation users.

    The training loader is rebuilt every epoch (``reload_dataloaders_every_n_epochs=1``)
    with a new permutation; every DDP rank draws the same permutation and Lightning's
    distributed sampler hands each rank its own batches.
    """

    def __init__(self, dataset: Dataset, config: RunConfig) -> None:
        super().__init__()
        self.dataset = dataset
        self.config = config
        self.pairs: TrainingPairs | None = None
        self.validation_users = np.flatnonzero(np.bincount(dataset.validation.user, minlength=dataset.n_users) > 0)

    def setup(self, stage: str | None = None) -> None:
        if self.pairs is None:
            self.pairs = TrainingPairs(self.dataset, self.config)

    def train_dataloader(self) -> DataLoader:
        assert self.pairs is not None, "setup() builds the pairs"
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        batches = _ShuffledBatches(self.pairs, self.config.train.batch_size, self.config.train.seed + epoch)
        return DataLoader(batches, batch_size=None, shuffle=False, collate_fn=_keep)

    def val_dataloader(self) -> DataLoader:
        n_chunks = self.trainer.world_size if self.trainer is not None else 1
        return DataLoader(_UserChunks(self.validation_users, n_chunks), batch_size=None, collate_fn=_keep)
