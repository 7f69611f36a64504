"""Search spaces that set the user tower together with the reconstruction loss.

The reconstruction loss accepts sum or mean pooling, so a space file that fixes or
searches those user-tower fields must keep them. The values that suggest.py implies
for the reconstruction loss should fill only the fields the space leaves open.
"""

from __future__ import annotations

import optuna

from recsearch.search import default_space, suggest_config
from recsearch.search.space import choice, int_param
from recsearch.search.suggest import seed_trial_params


def _suggestions(space, n_trials: int = 5):
    """Yield (trial, configuration) pairs drawn by a random sampler from ``space``."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    for _ in range(n_trials):
        trial = study.ask()
        yield trial, suggest_config(trial, space)
        study.tell(trial, 0.0)


def test_reconstruction_keeps_fixed_user_tower():
    space = default_space(n_items=500, n_train=5_000).with_overrides(
        {},
        {
            "model.loss.kind": "reconstruction",
            "model.user_tower.history": "mean",
            "model.user_tower.history_length": 50,
            "model.user_tower.use_user_id": True,
        },
    )
    for _, config in _suggestions(space):
        tower = config.model.user_tower
        assert tower.history == "mean"
        assert tower.history_length == 50
        assert tower.use_user_id


def test_reconstruction_searches_pooling_and_length():
    space = default_space(n_items=500, n_train=5_000).with_overrides(
        {"model.user_tower.history": choice("mean"), "model.user_tower.history_length": int_param(100, 200)},
        {"model.loss.kind": "reconstruction"},
    )
    for trial, config in _suggestions(space):
        assert config.model.user_tower.history == "mean"
        assert 100 <= config.model.user_tower.history_length <= 200
        assert "model.user_tower.history_length" in trial.params


def test_fixed_weight_decay_kept():
    fixed = default_space(n_items=500, n_train=5_000).with_overrides(
        {}, {"model.loss.kind": "reconstruction", "train.weight_decay": 1e-5}
    )
    for trial, config in _suggestions(fixed):
        assert config.train.weight_decay == 1e-5
    searched = default_space(n_items=500, n_train=5_000).with_overrides({}, {"model.loss.kind": "reconstruction"})
    for trial, config in _suggestions(searched):
        assert "train.weight_decay" not in trial.params
        assert config.train.weight_decay == 0.0


def test_seed_trials_follow_the_losses_the_space_allows():
    space = default_space(n_items=500, n_train=5_000)
    default, autoencoder = seed_trial_params(space)
    assert default["model.loss.kind"] == "sampled_softmax"
    assert autoencoder["model.loss.kind"] == "reconstruction"
    assert autoencoder["model.embedding_dim"] == 128
    assert not autoencoder["model.l2_normalize"]

    only = seed_trial_params(space.with_overrides({}, {"model.loss.kind": "reconstruction"}))
    assert len(only) == 1
    assert only[0]["model.l2_normalize"] is False
    assert only[0]["train.users_per_batch"] == 256
    assert len(seed_trial_params(space.with_overrides({}, {"model.loss.kind": "bpr"}))) == 1
    # Catalogues above the full-scoring limit get no reconstruction loss and one seed.
    assert len(seed_trial_params(default_space(n_items=300_000))) == 1


def test_time_ordered_logs_also_seed_a_session_model():
    space = default_space(n_items=500, n_train=5_000)
    *_, session = seed_trial_params(space, ordered=True)
    assert len(seed_trial_params(space, ordered=True)) == 3
    assert session["model.user_tower.history"] == "recency"
    assert session["model.user_tower.history_length"] == 10
    assert session["model.user_tower.use_user_id"] is False
    assert session["model.loss.kind"] == "sampled_softmax"
    # Without the sampled softmax the session seed has no place in the space.
    assert len(seed_trial_params(space.with_overrides({}, {"model.loss.kind": "bpr"}), ordered=True)) == 1


def test_reconstruction_trials_search_no_item_features():
    space = default_space(("category",), n_items=500, n_train=5_000).with_overrides({}, {"model.loss.kind": "reconstruction"})
    for trial, config in _suggestions(space):
        assert "model.item_tower.features.category.dim" not in trial.params
        assert config.model.item_tower.features == ()
    fixed = space.with_overrides({}, {"model.item_tower.features.category.dim": 8})
    for _, config in _suggestions(fixed):
        assert [(f.name, f.dim) for f in config.model.item_tower.features] == [("category", 8)]


def test_reconstruction_keeps_fixed_towers():
    space = default_space(n_items=500, n_train=5_000).with_overrides(
        {}, {"model.loss.kind": "reconstruction", "model.item_tower.mlp.depth": 1, "model.item_tower.id_dim": 48}
    )
    for trial, config in _suggestions(space):
        assert config.model.item_tower.mlp.depth == 1
        assert config.model.item_tower.id_dim == 48
        assert "model.user_tower.mlp.depth" not in trial.params
        assert config.model.user_tower.mlp.depth == 0
