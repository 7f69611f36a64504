"""Search spaces with the reconstruction loss, resumed studies and size-based winner selection.

Each test checks a promise of the README or of a docstring:
- A space file's fixed user-tower fields are kept under the reconstruction loss.
- A resumed study takes the fixed values given now (``_keep_study_params``).
- The recency encoder, a weighted mean, accepts the history lengths that mean pooling accepts.
"""

from __future__ import annotations

import optuna
import pytest

from recsearch.errors import InputError
from recsearch.models.config import UserTowerConfig
from recsearch.search import default_space, suggest_config
from recsearch.search.runner import _keep_study_params

BASE = default_space(("category",), n_items=500, n_train=5_000, sequence_encoders=False)


def _configs(space, study=None, n_trials: int = 20):
    """Return the configurations that a random sampler draws from ``space``, raising InputError on an invalid one."""
    study = study or optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    configs = []
    for _ in range(n_trials):
        trial = study.ask()
        configs.append(suggest_config(trial, space))
        study.tell(trial, 0.0)
    return configs


def _resumed(first, second):
    """Return a study created with space ``first``, and the space that a resumed run given ``second`` searches."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    study.set_user_attr("space", first.to_json())
    return study, _keep_study_params(study, second)


def test_reconstruction_keeps_fixed_history_length():
    # README: the search keeps to the linear autoencoder "unless the space fixes those fields".
    # Sum pooling over the latest 100 items is valid, but the loss replaces 100 with 2048.
    space = BASE.with_overrides({}, {"model.loss.kind": "reconstruction", "model.user_tower.history_length": 100})
    for config in _configs(space, n_trials=5):
        assert config.model.user_tower.history_length == 100


def test_reconstruction_keeps_fixed_user_id():
    # Sum pooling with a user id and user_id_dropout is a valid reconstruction model. The loss
    # drops the fixed use_user_id=true but keeps the dropout, so every trial fails validation.
    space = BASE.with_overrides(
        {},
        {"model.loss.kind": "reconstruction", "model.user_tower.use_user_id": True, "model.user_tower.user_id_dropout": 0.1},
    )
    try:
        configs = _configs(space, n_trials=5)
    except InputError as exc:
        pytest.fail(f"a valid space gave an invalid configuration: {exc}")
    for config in configs:
        assert config.model.user_tower.use_user_id


def test_resumed_study_takes_fixed_loss():
    # _keep_study_params: "Keep the parameter ranges the study was created with; take the
    # fixed values given now." Instead the study's loss range overrides the loss fixed now.
    study, space = _resumed(BASE, BASE.with_overrides({}, {"model.loss.kind": "reconstruction"}))
    assert {c.model.loss.kind for c in _configs(space, study)} == {"reconstruction"}


def test_resumed_study_keeps_loss_field():
    # A study created with the reconstruction loss fixed, resumed without a space file, neither
    # searches nor fixes the loss, so every trial trains ModelConfig's default BPR.
    _, space = _resumed(BASE.with_overrides({}, {"model.loss.kind": "reconstruction"}), BASE)
    assert "model.loss.kind" in space.params or "model.loss.kind" in space.fixed


def test_resumed_study_takes_fixed_history():
    # The study searched every encoder and the new space fixes mean pooling. The study's range
    # overrides the fixed value, so reconstruction trials fail with 'recency' or 'none'.
    study, space = _resumed(BASE, BASE.with_overrides({}, {"model.user_tower.history": "mean"}))
    try:
        configs = _configs(space, study, n_trials=40)
    except InputError as exc:
        pytest.fail(f"the resumed search gave an invalid configuration: {exc}")
    assert {c.model.user_tower.history for c in configs} == {"mean"}


def test_recency_accepts_long_history():
    # The 512-item cap was meant for attention and GRU. Recency is a weighted mean with the
    # memory of mean pooling, and 1000 items were accepted before the cap.
    assert UserTowerConfig(history="mean", history_length=1000).history_length == 1000
    assert UserTowerConfig(history="recency", history_length=1000).history_length == 1000
