"""Search spaces that set the user tower together with the reconstruction loss.

The reconstruction loss accepts sum or mean pooling, so a space file that fixes or
searches those user-tower fields must keep them. The values that suggest.py implies
for the reconstruction loss should fill only the fields the space leaves open.
"""

from __future__ import annotations

import re

import optuna
import pytest

from recsearch.errors import InputError
from recsearch.search import default_space, suggest_config
from recsearch.search.space import choice, int_param
from recsearch.search.suggest import check_fixed_values, seed_trial_params


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
    # A 500-item catalogue gets the 1,024-dimension seed with the zero diagonal, a larger one the 128-dimension seed.
    assert autoencoder["model.embedding_dim"] == 1024
    assert autoencoder["model.loss.zero_diagonal"] is True
    assert autoencoder["model.loss.input_dropout"] == 0.0
    assert autoencoder["model.loss.user_weight_exponent"] == 0.75
    assert autoencoder["train.learning_rate"] == 5e-4
    assert "model.l2_normalize" not in autoencoder  # searched for the pair losses only
    _, narrow = seed_trial_params(default_space(n_items=100_000, n_train=500_000))
    assert narrow["model.embedding_dim"] == 128
    assert narrow["model.loss.zero_diagonal"] is False
    assert narrow["train.learning_rate"] == 3e-3
    assert narrow["model.loss.user_weight_exponent"] == 0.75

    only = seed_trial_params(space.with_overrides({}, {"model.loss.kind": "reconstruction"}))
    assert len(only) == 1
    assert "model.l2_normalize" not in only[0]
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


def test_zero_diagonal_needs_linear_tower():
    """A space that gives the reconstruction loss a user id, an MLP or cosine scores never draws the zero diagonal."""
    base = default_space(n_items=500, n_train=5_000)
    for fixed in (
        {"model.user_tower.history": "sum", "model.user_tower.use_user_id": True},
        {"model.user_tower.mlp.depth": 1},
        {"model.l2_normalize": True},
    ):
        space = base.with_overrides({}, {"model.loss.kind": "reconstruction", **fixed})
        for trial, config in _suggestions(space, n_trials=8):
            assert "model.loss.zero_diagonal" not in trial.params
            assert not config.model.loss.zero_diagonal
    space = base.with_overrides({}, {"model.loss.kind": "reconstruction"})
    drawn = {config.model.loss.zero_diagonal for _, config in _suggestions(space, n_trials=12)}
    assert drawn == {False, True}


def test_wide_dims_small_catalogues_only():
    assert max(default_space(n_items=50_000).params["model.embedding_dim"].choices) == 1024
    assert max(default_space(n_items=50_001).params["model.embedding_dim"].choices) == 128


def test_contradictory_zero_diagonal_refused():
    base = default_space(n_items=500, n_train=5_000)
    for fixed, message in (
        ({"model.loss.kind": "bpr"}, "with model.loss.kind = 'bpr'"),
        ({"model.l2_normalize": True}, "model.l2_normalize = True"),
        (
            {"model.user_tower.use_user_id": True, "model.user_tower.mlp.depth": 2},
            "use_user_id = True, model.user_tower.mlp.depth = 2",
        ),
    ):
        space = base.with_overrides({}, {"model.loss.zero_diagonal": True, **fixed})
        with pytest.raises(InputError, match=re.escape(message)):
            check_fixed_values(space)
    check_fixed_values(base.with_overrides({}, {"model.loss.zero_diagonal": True, "model.loss.kind": "reconstruction"}))


def test_fixed_zero_diagonal_drops_user_id():
    """A space searching sum or mean pooling searches the user id too, except beside a fixed zero diagonal."""
    space = default_space(n_items=500, n_train=5_000).with_overrides(
        {"model.user_tower.history": choice("sum", "mean")},
        {"model.loss.kind": "reconstruction", "model.loss.zero_diagonal": True},
    )
    for trial, config in _suggestions(space, n_trials=8):
        assert "model.user_tower.use_user_id" not in trial.params
        assert config.model.loss.zero_diagonal
        assert not config.model.user_tower.use_user_id


def test_wide_seed_needs_zero_diagonal():
    base = default_space(n_items=500, n_train=5_000)
    for fixed in ({"model.loss.zero_diagonal": False}, {"model.l2_normalize": True}):
        _, autoencoder = seed_trial_params(base.with_overrides({}, fixed))
        assert autoencoder["model.embedding_dim"] == 128
        assert autoencoder.get("model.loss.zero_diagonal") is not True
    _, wide = seed_trial_params(base.with_overrides({}, {"model.loss.zero_diagonal": True}))
    assert wide["model.embedding_dim"] == 1024


@pytest.mark.parametrize("kind", ["bpr", "sampled_softmax", "full_softmax"])
def test_fixed_user_weight_needs_reconstruction(kind):
    space = default_space(n_items=1000, n_train=10_000).with_overrides(
        {}, {"model.loss.kind": kind, "model.loss.user_weight_exponent": 0.75}
    )
    with pytest.raises(InputError, match="model.loss.user_weight_exponent applies only to reconstruction"):
        check_fixed_values(space)
