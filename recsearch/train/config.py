"""The configuration of one training run: the model plus how to fit it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recsearch.models.config import ModelConfig, parse_config

# The metric that early stopping, checkpointing and search pruning watch, logged
# under this name every validation epoch.
MONITOR_K = 10
MONITOR = f"val_ndcg@{MONITOR_K}"


class TrainConfig(BaseModel):
    """Optimisation and stopping settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(default=4096, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0)  # Adam's L2 penalty on every parameter
    max_epochs: int = Field(default=30, ge=1)
    patience: int = Field(default=3, ge=1)  # validation epochs without improvement before stopping
    # "log" weighs each pair by 1 + log(weight), so a purchase counts more than a view.
    example_weighting: Literal["none", "log"] = "none"
    seed: int = 0


class RunConfig(BaseModel):
    """Everything one training run needs besides the data: what ``recsearch train --config`` reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        """Parse JSON, raising InputError that names each invalid field."""
        return parse_config(cls, text)
