from __future__ import annotations

import optuna
import pytest

from recsearch.errors import InputError
from recsearch.search import build_config, default_space, load_space, space_from_json, suggest_config


def test_every_suggestion_is_valid():
    space = default_space(("category", "brand"), n_items=1_000)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    for _ in range(200):
        trial = study.ask()
        config = suggest_config(trial, space)
        names = {f.name for f in config.model.item_tower.features}
        # The reconstruction loss searches no item features (see suggest.py).
        assert names == (set() if config.model.loss.kind == "reconstruction" else {"category", "brand"})
        study.tell(trial, 0.0)


def test_conditional_params_only_when_active():
    space = default_space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1), direction="maximize")
    seen_kinds, seen_zero_diagonal = set(), set()
    for _ in range(100):
        trial = study.ask()
        config = suggest_config(trial, space)
        params = trial.params
        seen_kinds.add(params["model.loss.kind"])
        if params["model.loss.kind"] != "bpr":
            assert "model.loss.n_negatives" not in params
        if params["model.loss.kind"] == "reconstruction":
            # The loss fixes the user tower and counts its batches in users.
            assert not {"model.user_tower.history", "train.batch_size", "train.weight_decay"} & set(params)
            assert {"model.loss.l2", "model.loss.user_weight_exponent", "train.users_per_batch"} <= set(params)
            assert config.model.user_tower.history == "sum"
            assert not config.model.user_tower.use_user_id
            assert config.model.embeddings.init_std == 0.01
            # The linear autoencoder: item vectors shared with the history, no MLP, one id table.
            assert not {"model.item_tower.id_dim", "model.item_tower.mlp.depth", "model.user_tower.mlp.depth"} & set(params)
            assert config.model.item_tower.id_dim == config.model.embedding_dim
            assert config.model.item_tower.mlp.depth == config.model.user_tower.mlp.depth == 0
            assert config.model.embeddings.n_frequency_tiers == 1
            # Dot products, so that the zero diagonal can be drawn: the linear tower has it.
            assert "model.l2_normalize" not in params
            assert not config.model.l2_normalize
            assert "model.loss.zero_diagonal" in params
            seen_zero_diagonal.add(config.model.loss.zero_diagonal)
        else:
            assert not {
                "model.loss.l2", "model.loss.input_dropout", "model.loss.user_weight_exponent", "train.users_per_batch"
            } & set(params)
            assert "model.loss.zero_diagonal" not in params
            if params["model.user_tower.history"] == "none":
                assert "model.user_tower.history_length" not in params
            if not params["model.l2_normalize"]:
                assert "model.temperature" not in params
        study.tell(trial, 0.0)
    assert seen_kinds == {"bpr", "sampled_softmax", "full_softmax", "reconstruction"}
    assert seen_zero_diagonal == {False, True}


def test_space_file_overrides(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        '[params."model.embedding_dim"]\nlow = 8\nhigh = 32\nlog = true\n\n[fixed]\n"model.loss.kind" = "bpr"\n',
        encoding="utf-8",
    )
    space = load_space(path, default_space())
    assert space.params["model.embedding_dim"].kind == "int"
    assert space.params["model.embedding_dim"].high == 32
    assert "model.loss.kind" not in space.params
    assert space.fixed["model.loss.kind"] == "bpr"


def test_yaml_space_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("params:\n  train.learning_rate: {low: 0.001, high: 0.01, log: true}\n", encoding="utf-8")
    space = load_space(path, default_space())
    assert space.params["train.learning_rate"].kind == "float"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[params."model.embedding_dim"]\nlow = 64\nhigh = 8\n', "low=64.0 must not exceed high=8.0|low=64 must not exceed high=8"),
        ('[params."model.embedding_dim"]\nlow = 0\nhigh = 8\nlog = true\n', "log-scale range needs low > 0"),
        ('[params."embedding_dim"]\nchoices = [8]\n', "must be a dotted path starting with model. or train."),
        ('[params."model.embedding_dim"]\nlo = 8\n', r"unknown keys \['lo'\]"),
        ("[grid]\n", r"unknown sections \['grid'\]"),
        ('[params."model.embedding_dim"]\nchoices = []\n', "choices must be a non-empty list"),
    ],
)
def test_invalid_space_file(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_space(path, default_space())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[fixed]\n"model.loss.kind" = "bpr"\n"model.loss.user_weight_exponent" = 0.75\n',
         "model.loss.user_weight_exponent applies only to reconstruction"),
        ('[fixed]\n"model.loss.kind" = "sampled_softmax"\n"model.loss.l2" = 50.0\n',
         "model.loss.l2 applies only to reconstruction"),
        ('[params."model.loss.input_dropout"]\nlow = 0.1\nhigh = 0.3\n[fixed]\n"model.loss.kind" = "full_softmax"\n',
         "model.loss.input_dropout applies only to reconstruction"),
        ('[params."model.loss.kind"]\nchoices = ["bpr", "full_softmax"]\n[fixed]\n"train.users_per_batch" = 128\n',
         r"no allowed loss \(bpr, full_softmax\) uses: train.users_per_batch applies only to reconstruction"),
        ('[fixed]\n"model.loss.kind" = "reconstruction"\n"model.loss.n_negatives" = 8\n"train.batch_size" = 512\n',
         "model.loss.n_negatives applies only to bpr; train.batch_size applies only to bpr or full_softmax or sampled_softmax"),
    ],
)
def test_space_file_rejects_unused_loss_settings(tmp_path, text, message):
    path = tmp_path / "space.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        load_space(path, default_space())


def test_space_file_keeps_settings_of_an_allowed_loss(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        '[params."model.loss.kind"]\nchoices = ["bpr", "reconstruction"]\n'
        '[fixed]\n"model.loss.l2" = 50.0\n"model.loss.n_negatives" = 4\n',
        encoding="utf-8",
    )
    space = load_space(path, default_space())
    assert space.fixed["model.loss.l2"] == 50.0
    assert space.fixed["model.loss.n_negatives"] == 4


def test_invalid_combination_named():
    with pytest.raises(InputError, match="temperature"):
        build_config({"model.temperature": 0.5, "model.l2_normalize": False})


def test_feature_dims_build_feature_list():
    config = build_config({"model.item_tower.features.brand.dim": 7})
    assert [(f.name, f.dim) for f in config.model.item_tower.features] == [("brand", 7)]


def test_cpu_space_leaves_out_sequence_encoders():
    cpu = default_space(sequence_encoders=False).params["model.user_tower.history"].choices
    gpu = default_space(sequence_encoders=True).params["model.user_tower.history"].choices
    assert set(cpu) == {"none", "mean", "sum", "recency"}
    assert set(gpu) == set(cpu) | {"gru", "attention"}


def test_catalogue_wide_losses_size_limit():
    # full_softmax and reconstruction score every item per example, up to 200,000 items by default.
    small = default_space(n_items=200_000).params["model.loss.kind"].choices
    large = default_space(n_items=200_001).params["model.loss.kind"].choices
    assert set(small) == {"bpr", "sampled_softmax", "full_softmax", "reconstruction"}
    assert set(large) == {"bpr", "sampled_softmax"}


def test_space_survives_json():
    space = default_space(("category",), n_items=2_000_000, n_train=500_000)
    assert space_from_json(space.to_json()) == space
