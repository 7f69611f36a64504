"""The Lightning wrapper of the two-tower network: one training step, full-ranking validation."""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np
import torch

from recsearch.evaluate.protocol import EvaluationSplit
from recsearch.evaluate.ranking import evaluate_ranking
from recsearch.models.losses import Batch, compute_loss
from recsearch.models.two_tower import TwoTowerModel
from recsearch.train.config import MONITOR_K, RunConfig
from recsearch.train.data import UserHistory
from recsearch.train.scoring import TwoTowerScorer

VALIDATION_KS = (MONITOR_K, 20)


class TwoTowerModule(pl.LightningModule):
    """Trains a TwoTowerModel and logs ``val_ndcg@10`` (and recall, hit rate) each validation epoch.

    Validation ranks the whole catalogue for each validation user with the shared
    evaluator. Each process ranks its own chunk of users and the sums are reduced
    across processes, so the logged value is the same on every rank.
    """

    def __init__(
        self,
        network: TwoTowerModel,
        config: RunConfig,
        *,
        item_log_probability: torch.Tensor,
        validation: EvaluationSplit,
        validation_history: UserHistory | None,
    ) -> None:
        super().__init__()
        self.network = network
        self.config = config
        self.register_buffer("item_log_probability", item_log_probability, persistent=False)  # (n_items,)
        self.validation = validation
        self.validation_history = validation_history
        self._scorer: TwoTowerScorer | None = None
        self._sums: dict[str, float] = {}
        self._n_users = 0
        self._loss_sum = torch.zeros(())
        self._n_examples = 0
        self.automatic_optimization = False

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._n_examples = 0

    def training_step(self, batches: Sequence[Batch], batch_index: int) -> torch.Tensor:
        """Run one optimizer step per batch of the group, by hand (manual optimisation).

        Lightning's automatic optimisation wraps each step in a closure, and a per-step
        ``self.log`` moves the whole result collection. With Lightning 2.6 on CPU the two
        made an MF-BPR epoch at batch 4096 about 30% slower than a plain loop. Each step
        here does the work of a plain loop: zero the gradients, backward through the
        strategy (so DDP and precision plugins still apply) and step the optimizer, which
        also advances ``trainer.global_step``. The training loss is summed on the device
        and logged once, on the epoch's last group. Returns the group's mean loss, detached.
        """
        optimizer = self.optimizers()
        group_loss = torch.zeros((), device=self.device)
        n_group = 0
        for batch in batches:
            loss = compute_loss(
                self.network, batch, self.config.model.loss, item_log_probability=self.item_log_probability
            )
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
            n_examples = batch.user.shape[0]
            group_loss += loss.detach() * n_examples
            n_group += n_examples

        self._loss_sum += group_loss
        self._n_examples += n_group
        # NOTE: an epoch cut short (max_steps, an interrupt) logs no train_loss for that epoch.
        if batch_index + 1 == self.trainer.num_training_batches:
            self.log("train_loss", self._loss_sum / self._n_examples, on_step=False, on_epoch=True, batch_size=1)
        return group_loss / max(n_group, 1)

    def on_validation_epoch_start(self) -> None:
        self._scorer = TwoTowerScorer(self.network, self.validation_history)
        self._sums = {}
        self._n_users = 0

    def validation_step(self, users: np.ndarray, batch_index: int) -> None:
        assert self._scorer is not None
        result = evaluate_ranking(
            self._scorer,
            target=self.validation.target,
            exclude=self.validation.known,
            ks=VALIDATION_KS,
            users=users,
        )
        for name in ("ndcg", "recall", "hit_rate"):
            for k in VALIDATION_KS:
                key = f"{name}@{k}"
                self._sums[key] = self._sums.get(key, 0.0) + float(result.per_user[key].sum())
        self._n_users += int(result.users.shape[0])

    def on_validation_epoch_end(self) -> None:
        names = sorted(self._sums)
        totals = torch.tensor([self._sums[name] for name in names] + [self._n_users], dtype=torch.float64, device=self.device)
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        n_users = max(float(totals[-1]), 1.0)
        for index, name in enumerate(names):
            self.log(f"val_{name}", float(totals[index]) / n_users, sync_dist=False)
        self._scorer = None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return build_optimizer(self.network, self.config)


def build_optimizer(network: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    """Return Adam in its fused form, which steps all parameters in one kernel (about 20% faster per MF batch on CPU)."""
    return torch.optim.Adam(
        network.parameters(), lr=config.train.learning_rate, weight_decay=config.train.weight_decay, fused=True
    )
