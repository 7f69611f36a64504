"""The configuration of one training run: the model plus how to fit it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recsearch.models.config import (
    EmbeddingConfig,
    ItemTowerConfig,
    LossConfig,
    ModelConfig,
    UserTowerConfig,
    parse_config,
)

# The metric that early stopping, checkpointing and search pruning watch, logged
# under this name every validation epoch.
MONITOR_K = 10
MONITOR = f"val_ndcg@{MONITOR_K}"


class TrainConfig(BaseModel):
    """Optimisation and stopping settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Pairs per optimizer step; with sampled softmax also the number of in-batch negatives
    # per example plus one. A step of sampled softmax costs O(batch_size**2).
    batch_size: int = Field(default=1024, ge=1)
    # Users per optimizer step with the reconstruction loss, whose examples are users.
    users_per_batch: int = Field(default=512, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)  # Adam's L2 penalty on every parameter
    max_epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=3, ge=1)  # validation epochs without improvement before stopping
    # "log" weighs each pair by 1 + log(weight), so a purchase counts more than a view.
    example_weighting: Literal["none", "log"] = "none"
    seed: int = 0


# The model of RunConfig(): matrix factorisation (d=64) trained with sampled softmax over
# the batch's items, corrected for item popularity (logQ), on cosine scores divided by
# 0.1. Validation NDCG@10 against the same model trained with BPR and one negative:
# MovieLens-100K leave-last-out 0.062 against 0.038 (EASE 0.063, iALS 0.061), MovieLens-1M
# random split 0.215 against 0.184 (EASE 0.249, iALS 0.230). On the MovieLens-100K
# temporal split it is slightly worse, 0.112 against 0.118 (popularity 0.119).
# Measured once, at most 30 epochs with early stopping, on a 2-core CPU.
# NOTE: a configuration that gives ``model`` in part fills the rest from ModelConfig's own
# defaults (BPR with one negative, plain dot product), not from this model.
DEFAULT_MODEL = ModelConfig.matrix_factorization(
    64, loss=LossConfig(kind="sampled_softmax", popularity_correction=True), l2_normalize=True, temperature=0.1
)


# The linear-autoencoder family: the sum of a user's item vectors against every item
# vector, trained with the reconstruction loss. Both towers share the item vectors.
# MovieLens-1M random split, 10 epochs: validation NDCG@10 0.243 with 256 users per step,
# 0.241 with 128 and 0.237 with 500 (16 s on a 2-core CPU), against EASE's 0.249.
# Weighing each user's error by n**-0.75 (LossConfig.user_weight_exponent), at most 20
# epochs: 0.2475 against 0.2452 unweighted, test 0.3213 against 0.3152. Measured once each.
RECONSTRUCTION_MODEL = ModelConfig(
    embedding_dim=128,
    user_tower=UserTowerConfig(use_user_id=False, history="sum", history_length=2048, id_dim=128),
    item_tower=ItemTowerConfig(id_dim=128),
    embeddings=EmbeddingConfig(init_std=0.01),
    loss=LossConfig(kind="reconstruction", user_weight_exponent=0.75),
)
RECONSTRUCTION_TRAIN = TrainConfig(learning_rate=3e-3, users_per_batch=256)

# The same family at 1,024 dimensions with EASE's zero diagonal and no input dropout, for
# catalogues small enough (search.space.WIDE_DIMS_MAX_ITEMS). MovieLens-1M random split,
# trained on train alone, at most 20 epochs, each user's error weighed by n**-0.75:
# validation NDCG@10 0.2549 and test 0.3324, against 0.2493 and 0.3272 for EASE. Unweighted:
# 0.2488 and 0.3232. The weighting with exponent 1 gave 0.2546, and with l2 80 and 300
# 0.2548 and 0.2523. Input dropout 0.25 scored 0.2548 and lr 1e-3 0.2536. Without
# weighting, input dropouts from 0 to 0.5 and learning rates of 5e-4 and 1e-3 scored
# within 0.0015 of each other, and 256 dimensions without the zero diagonal reached 0.2453.
# On MovieLens-latest-small the weighting raised validation NDCG@10 from 0.0336 to 0.0386.
# On MovieLens-100K's time split it was level (0.0584 against 0.0594). Measured once each.
WIDE_RECONSTRUCTION_MODEL = ModelConfig(
    embedding_dim=1024,
    user_tower=UserTowerConfig(use_user_id=False, history="sum", history_length=2048, id_dim=1024),
    item_tower=ItemTowerConfig(id_dim=1024),
    embeddings=EmbeddingConfig(init_std=0.01),
    loss=LossConfig(kind="reconstruction", zero_diagonal=True, input_dropout=0.0, user_weight_exponent=0.75),
)
WIDE_RECONSTRUCTION_TRAIN = TrainConfig(learning_rate=5e-4, users_per_batch=256)

# A session model for time-ordered logs: the recency-weighted mean of the user's latest 10
# items, no user id, sampled softmax on cosine scores / 0.1. On the demo's synthetic log
# (leave-last-out split) it reached validation NDCG@10 0.294 in 4 epochs, against 0.199 for
# DEFAULT_MODEL and 0.227 for RECONSTRUCTION_MODEL. Measured once.
SESSION_MODEL = ModelConfig(
    embedding_dim=64,
    user_tower=UserTowerConfig(use_user_id=False, history="recency", history_length=10, recency_decay=0.7),
    item_tower=ItemTowerConfig(id_dim=64),
    loss=LossConfig(kind="sampled_softmax"),
    l2_normalize=True,
    temperature=0.1,
)


class RunConfig(BaseModel):
    """Everything one training run needs besides the data: what ``recsearch train --config`` reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelConfig = DEFAULT_MODEL
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _check_batch_unit(self) -> "RunConfig":
        reconstruction = self.model.loss.kind == "reconstruction"
        if not reconstruction and self.train.users_per_batch != TrainConfig.model_fields["users_per_batch"].default:
            raise ValueError(
                f"train.users_per_batch applies only to loss kind 'reconstruction', got {self.model.loss.kind!r}; "
                "set train.batch_size instead"
            )
        if reconstruction and self.train.batch_size != TrainConfig.model_fields["batch_size"].default:
            raise ValueError(
                "train.batch_size counts pairs, and the reconstruction loss trains on users; "
                f"set train.users_per_batch instead of batch_size={self.train.batch_size}"
            )
        return self

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        """Parse JSON, raising InputError that names each invalid field."""
        return parse_config(cls, text)
