"""Training data as tensors: time-ordered user histories (CSR) and whole batches drawn by index.

Dimension legend: B batch, N history length, P training pairs, U users with training pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
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
        self.weight = _example_weights(dataset, config, order)
        tower = config.model.user_tower
        self.history_length = tower.history_length if tower.history != "none" else 0

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def batch(self, index: torch.Tensor) -> Batch:
        """Gather the pairs at ``index`` (B,) with each user's items before that pair."""
        user = self.user.index_select(0, index)
        history = mask = None
        if self.history_length:
            # The items before the pair's own position, so the target never leaks into its history.
            history, mask = self.history.window(index, user, self.history_length)
        weight = None if self.weight is None else self.weight.index_select(0, index)
        item = self.item.index_select(0, index)
        return Batch(user=user, item=item, weight=weight, history=history, history_mask=mask)

    def item_log_probability(self, n_items: int) -> torch.Tensor:
        """Return (n_items,) log share of the training pairs per item, for the logQ correction."""
        return _item_log_probability(self.item, n_items)


class TrainingUsers:
    """The users with training pairs, turned into batches of whole users for the reconstruction loss.

    A batch contains each user's latest ``history_length`` items as the user tower's input
    and all of the user's training items as the target.
    """

    def __init__(self, dataset: Dataset, config: RunConfig) -> None:
        self.history, order = UserHistory.from_tables(dataset.n_users, dataset.train)
        counts = torch.diff(self.history.indptr)  # (n_users,)
        self.users = torch.nonzero(counts > 0).squeeze(1)  # (U,)
        self.weight = _example_weights(dataset, config, order)  # (P,) in history order
        self.user_weight = _user_weights(counts, self.users, config.model.loss.user_weight_exponent)  # (n_users,)
        self.history_length = config.model.user_tower.history_length

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def batch(self, index: torch.Tensor) -> Batch:
        """Gather the users at ``index`` (B,) with their latest items and all their items."""
        user = self.users.index_select(0, index)
        history, mask = self.history.last_items(user, self.history_length)
        start, end = self.history.indptr[user], self.history.indptr[user + 1]
        counts = end - start  # (B,)
        item_row = torch.repeat_interleave(torch.arange(user.shape[0]), counts)  # (P,)
        first = torch.cumsum(counts, 0) - counts  # (B,) position of each row's first pair in the batch
        positions = start[item_row] + torch.arange(item_row.shape[0]) - first[item_row]  # (P,)
        weight = None if self.weight is None else self.weight[positions]
        row_weight = None if self.user_weight is None else self.user_weight.index_select(0, user)
        return Batch(
            user=user, item=self.history.items[positions], weight=weight, history=history, history_mask=mask,
            item_row=item_row, row_weight=row_weight,
        )

    def item_log_probability(self, n_items: int) -> torch.Tensor:
        """Return (n_items,) log share of the training pairs per item (unused by the reconstruction loss)."""
        return _item_log_probability(self.history.items, n_items)


def _example_weights(dataset: Dataset, config: RunConfig, order: np.ndarray) -> torch.Tensor | None:
    """Return (P,) weights 1 + log(weight) of the training pairs in ``order``, or None without example weighting."""
    if config.train.example_weighting != "log":
        return None
    weight = 1.0 + np.log(np.maximum(dataset.train.weight[order], 1.0))
    return torch.as_tensor(weight, dtype=torch.float32)


def _user_weights(counts: torch.Tensor, users: torch.Tensor, exponent: float) -> torch.Tensor | None:
    """Return (n_users,) weights counts**-exponent with mean 1 over ``users``, or None for exponent 0.

    ``counts`` (n_users,) is the number of training items of each user and ``users`` (U,)
    lists the users with at least one. The others get weight 0, as no batch contains them.
    """
    if exponent == 0:
        return None
    weight = torch.zeros(counts.shape[0], dtype=torch.float64)
    weight[users] = counts[users].double().pow(-exponent)
    return (weight / weight[users].mean()).float()


def _item_log_probability(items: torch.Tensor, n_items: int) -> torch.Tensor:
    counts = torch.bincount(items, minlength=n_items).clamp_min(1).double()
    return torch.log(counts / counts.sum()).float()


def _keep(value: object) -> object:
    """Pass a prepared batch through the DataLoader unchanged (a module-level function pickles)."""
    return value


# Training examples per Lightning batch. Lightning 2.6's loop costs a fixed 0.3-0.5 ms
# per batch on CPU (hooks, progress tracking), a fifth to a sixth of an MF-BPR step at
# batch 4096. So each Lightning batch carries a group of optimizer steps that together
# see about this many examples (8 steps at batch 4096, 1 step at batch 32768 or more).
EXAMPLES_PER_GROUP = 32_768


class EpochBatches:
    """The training batches of one epoch, grouped for Lightning and read without a DataLoader.

    Batch i is the pairs ``permutation[i * B : (i + 1) * B]`` of a permutation drawn
    from ``seed``. Each process of ``world_size`` takes batches ``rank, rank + world_size,
    ...``. When the batches do not divide evenly, the last ranks repeat the epoch's first
    batches (as torch's DistributedSampler pads), so every rank runs the same number of
    steps. Iteration yields tuples of ``steps_per_group`` consecutive batches of this
    rank (the last tuple may be shorter), each tuple one Lightning batch whose batches
    are one optimizer step each.
    """

    def __init__(
        self,
        pairs: TrainingPairs | TrainingUsers,
        batch_size: int,
        seed: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        steps_per_group: int | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if steps_per_group is not None and steps_per_group < 1:
            raise ValueError(f"steps_per_group must be at least 1, got {steps_per_group}")
        self.pairs = pairs
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.steps_per_group = steps_per_group or max(1, EXAMPLES_PER_GROUP // batch_size)
        generator = torch.Generator().manual_seed(seed)
        self.permutation = torch.randperm(len(pairs), generator=generator)  # (P,)
        self.n_batches = (len(pairs) + batch_size - 1) // batch_size  # over all ranks
        self.n_steps = (self.n_batches + world_size - 1) // world_size  # on this rank

    def __len__(self) -> int:
        return (self.n_steps + self.steps_per_group - 1) // self.steps_per_group

    def __iter__(self) -> Iterator[tuple[Batch, ...]]:
        for first in range(0, self.n_steps, self.steps_per_group):
            steps = range(first, min(first + self.steps_per_group, self.n_steps))
            yield tuple(self._batch(step) for step in steps)

    def _batch(self, step: int) -> Batch:
        index = (step * self.world_size + self.rank) % self.n_batches
        start = index * self.batch_size
        return self.pairs.batch(self.permutation[start : start + self.batch_size])


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

    The training batches are rebuilt every epoch (``reload_dataloaders_every_n_epochs=1``)
    with a new permutation. Every DDP rank draws the same permutation and takes its own
    share of the batches (see EpochBatches).
    """

    def __init__(self, dataset: Dataset, config: RunConfig) -> None:
        super().__init__()
        self.dataset = dataset
        self.config = config
        self.pairs: TrainingPairs | TrainingUsers | None = None
        self.validation_users = np.flatnonzero(np.bincount(dataset.validation.user, minlength=dataset.n_users) > 0)

    def setup(self, stage: str | None = None) -> None:
        if self.pairs is None:
            examples = TrainingUsers if self.reconstruction else TrainingPairs
            self.pairs = examples(self.dataset, self.config)

    @property
    def reconstruction(self) -> bool:
        """Whether the examples are users (the reconstruction loss) rather than pairs."""
        return self.config.model.loss.kind == "reconstruction"

    def train_dataloader(self) -> EpochBatches:
        assert self.pairs is not None, "setup() builds the pairs"
        epoch, rank, world_size = 0, 0, 1
        if self.trainer is not None:
            epoch, rank, world_size = self.trainer.current_epoch, self.trainer.global_rank, self.trainer.world_size
        seed = self.config.train.seed + epoch
        train = self.config.train
        if self.reconstruction:
            # One step per Lightning batch: a step scores the whole catalogue for each user,
            # so Lightning's per-batch cost is small, and time limits and stop requests,
            # checked between Lightning batches, take effect after one step.
            return EpochBatches(self.pairs, train.users_per_batch, seed, rank=rank, world_size=world_size, steps_per_group=1)
        return EpochBatches(self.pairs, train.batch_size, seed, rank=rank, world_size=world_size)

    def transfer_batch_to_device(self, batch: object, device: torch.device, dataloader_idx: int) -> object:
        """Move training batches field by field; Lightning's generic traversal costs more than the copy on CPU."""
        if isinstance(batch, Batch):
            if batch.item.device == device:
                return batch
            return Batch(*(None if field is None else field.to(device, non_blocking=True) for field in batch))
        if isinstance(batch, tuple) and batch and all(isinstance(part, Batch) for part in batch):
            return tuple(self.transfer_batch_to_device(part, device, dataloader_idx) for part in batch)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def val_dataloader(self) -> DataLoader:
        n_chunks = self.trainer.world_size if self.trainer is not None else 1
        return DataLoader(_UserChunks(self.validation_users, n_chunks), batch_size=None, collate_fn=_keep)
