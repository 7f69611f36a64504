"""A small synthetic log, a two-epoch search space and helpers shared by the `recsearch run` tests."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from recsearch.datasets import SYNTHETIC_EVENT_WEIGHTS, SyntheticConfig, generate_clicklog, write_clicklog
from recsearch.pipeline import STATE_FILE

SPACE = """
[params."model.embedding_dim"]
choices = [16, 32]

[params."model.user_tower.history"]
choices = ["none"]

[fixed]
"train.max_epochs" = 2
"train.patience" = 2
"train.batch_size" = 512
"""

WEIGHTS = ",".join(f"{name}={weight:g}" for name, weight in SYNTHETIC_EVENT_WEIGHTS.items())


@pytest.fixture(scope="module")
def click_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("log") / "clicks.csv"
    write_clicklog(generate_clicklog(SyntheticConfig(n_users=250, n_items=150, n_categories=8, n_brands=10, seed=3)), path)
    return path


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "space.toml"
    path.write_text(SPACE, encoding="utf-8")
    return path


def cli(log: Path, out: Path, space: Path, *extra: str) -> list[str]:
    """Return the arguments of a quiet `recsearch run` on ``log`` with the small space."""
    return ["-q", "run", str(log), "--out", str(out), "--event-weights", WEIGHTS, "--space", str(space),
            "--pruner", "none", "--resamples", "100", *extra]


def state(out: Path) -> dict:
    """Return the pipeline record of ``out``."""
    return json.loads((out / STATE_FILE).read_text(encoding="utf-8"))


def finished_trials(out: Path) -> int:
    """Return the number of complete or pruned trials of the study in ``out``."""
    study = optuna.load_study(study_name="recsearch", storage=f"sqlite:///{out / 'run' / 'study.db'}")
    return len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))
