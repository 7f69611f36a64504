import pytest

from recsearch.errors import InputError
from recsearch.models import LossConfig, MLPConfig, ModelConfig, UserTowerConfig
from recsearch.train import RunConfig


def test_json_round_trip():
    config = RunConfig(
        model=ModelConfig(
            user_tower=UserTowerConfig(history="gru", user_id_dropout=0.2, mlp=MLPConfig(depth=2)),
            loss=LossConfig(kind="sampled_softmax"),
            l2_normalize=True,
            temperature=0.05,
        )
    )
    assert RunConfig.from_json(config.model_dump_json()) == config


def test_unknown_option_names_the_field():
    with pytest.raises(InputError, match="model.loss.negatives: unknown option"):
        RunConfig.from_json('{"model": {"loss": {"negatives": 4}}}')


def test_out_of_range_value_is_shown():
    with pytest.raises(InputError, match=r"embedding_dim: .*\(got 0\)"):
        ModelConfig.from_json('{"embedding_dim": 0}')


def test_user_tower_needs_an_input():
    with pytest.raises(ValueError, match="needs an input"):
        UserTowerConfig(use_user_id=False, history="none")


def test_options_of_other_kinds_are_rejected():
    with pytest.raises(ValueError, match="n_negatives applies only"):
        LossConfig(kind="sampled_softmax", n_negatives=4)
    with pytest.raises(ValueError, match="temperature=0.1 applies only"):
        ModelConfig(temperature=0.1)
    with pytest.raises(ValueError, match="user_id_dropout"):
        UserTowerConfig(user_id_dropout=0.1)


def test_configs_are_frozen():
    config = ModelConfig()
    with pytest.raises(Exception):
        config.embedding_dim = 8  # type: ignore[misc]
