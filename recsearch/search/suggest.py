"""Turn an Optuna trial into a valid training configuration drawn from a search space."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from pydantic import ValidationError

from recsearch.errors import InputError
from recsearch.models.config import POOLING_HISTORIES, format_validation_error
from recsearch.search.space import Param, SearchSpace, check_loss_settings
from recsearch.train import RunConfig
from recsearch.train.config import (
    RECONSTRUCTION_MODEL,
    RECONSTRUCTION_TRAIN,
    SESSION_MODEL,
    WIDE_RECONSTRUCTION_MODEL,
    WIDE_RECONSTRUCTION_TRAIN,
)

Values = dict[str, Any]
_FEATURE_PREFIX = "model.item_tower.features."


def _reconstruction(values: Values) -> bool:
    return values.get("model.loss.kind") == "reconstruction"


# The values a zero diagonal needs (a linear user tower), which are also their defaults.
_LINEAR_TOWER: Values = {
    "model.l2_normalize": False,
    "model.user_tower.use_user_id": False,
    "model.user_tower.mlp.depth": 0,
}


def _linear_tower(values: Values) -> bool:
    return all(values.get(path, needed) == needed for path, needed in _LINEAR_TOWER.items())


# A parameter whose path is a key here is suggested only when the predicate is true for
# the values suggested or fixed before it. Otherwise the configuration default applies.
_CONDITIONS: dict[str, Callable[[Values], bool]] = {
    "model.user_tower.history_length": lambda v: v.get("model.user_tower.history", "none") != "none",
    "model.user_tower.use_user_id": lambda v: v.get("model.user_tower.history", "none") != "none",
    "model.user_tower.recency_decay": lambda v: v.get("model.user_tower.history") == "recency",
    "model.embeddings.tier_dim_ratio": lambda v: v.get("model.embeddings.n_frequency_tiers", 1) > 1,
    "model.temperature": lambda v: bool(v.get("model.l2_normalize", False)),
    "model.loss.n_negatives": lambda v: v.get("model.loss.kind", "bpr") == "bpr",
    "model.loss.popularity_correction": lambda v: v.get("model.loss.kind") == "sampled_softmax",
    "model.loss.input_dropout": _reconstruction,
    "model.loss.hidden_item_weight": _reconstruction,
    "model.loss.l2": _reconstruction,
    "model.loss.user_weight_exponent": _reconstruction,
    # Only for a linear user tower, which the reconstruction loss keeps unless the space fixes otherwise.
    "model.loss.zero_diagonal": lambda v: _reconstruction(v) and _linear_tower(v),
    "train.users_per_batch": _reconstruction,
    "train.batch_size": lambda v: not _reconstruction(v),
}
for _tower in ("user_tower", "item_tower"):
    for _field in ("width", "activation", "dropout", "norm"):
        _CONDITIONS[f"model.{_tower}.mlp.{_field}"] = (
            lambda v, t=_tower: v.get(f"model.{t}.mlp.depth", 0) > 1
        )

# Values that the reconstruction loss sets where the space gives none it accepts: the user
# tower sums the user's items (up to the latest 2,048) into the item vectors.
_RECONSTRUCTION_TOWER: Values = {
    "model.user_tower.history": "sum",
    "model.user_tower.history_length": 2048,
    "model.user_tower.use_user_id": False,
    "model.embeddings.init_std": 0.01,
}
_USER_TOWER_INPUTS = ("model.user_tower.history", "model.user_tower.history_length", "model.user_tower.use_user_id")
# Searched for the pair losses only. Under the reconstruction loss a value the space fixes
# is kept. Otherwise the configuration default applies, and the item id size follows the
# embedding size. So that loss searches the linear autoencoder: item vectors shared with the
# history, no MLP, one id table and no item features. On the demo's log, trials with
# projections or MLPs stayed below validation NDCG@10 0.08 against the seed's 0.227. Item
# features slowed the seed to 0.14 after 4 epochs against 0.22. Weight decay's range does
# not suit that loss, which has its own l2, and cosine scores leave the EASE family.
_PAIR_LOSS_SEARCH = (
    "train.weight_decay",
    "model.l2_normalize",
    "model.user_tower.id_dim",
    "model.item_tower.id_dim",
    "model.user_tower.mlp.depth",
    "model.item_tower.mlp.depth",
    "model.embeddings.n_frequency_tiers",
)


def _space_pools_history(space: SearchSpace) -> bool:
    """Return whether every history encoder the space fixes or offers suits the reconstruction loss."""
    if "model.user_tower.history" in space.fixed:
        return space.fixed["model.user_tower.history"] in POOLING_HISTORIES
    param = space.params.get("model.user_tower.history")
    return param is not None and set(param.choices) <= set(POOLING_HISTORIES)


def check_fixed_values(space: SearchSpace) -> None:
    """Raise InputError when the space fixes values that no trial could use.

    A fixed value that applies to one loss only is otherwise used by the trials of that loss
    and ignored by the others. Here no trial could use it, so the space contradicts itself:
    a zero diagonal beside values that rule it out, or a setting of a loss the space excludes.
    """
    if space.fixed.get("model.loss.zero_diagonal") is True:
        _check_zero_diagonal(space.fixed)
    check_loss_settings(space, list(space.fixed), "the search space")


def _check_zero_diagonal(fixed: Values) -> None:
    kind = fixed.get("model.loss.kind")
    if kind is not None and kind != "reconstruction":
        raise InputError(
            f"the search space fixes model.loss.zero_diagonal = true with model.loss.kind = {kind!r}; "
            "the zero diagonal applies only to the reconstruction loss"
        )
    conflicts = [
        f"{path} = {fixed[path]!r}" for path, needed in _LINEAR_TOWER.items() if fixed.get(path, needed) != needed
    ]
    if conflicts:
        raise InputError(
            "the search space fixes model.loss.zero_diagonal = true, which needs a linear user tower, together "
            f"with {', '.join(conflicts)}; remove one of them"
        )


def is_active(path: str, values: Values, space: SearchSpace) -> bool:
    """Return whether ``path`` is suggested (or its fixed value used), given the values set before it."""
    if _reconstruction(values) and path in _USER_TOWER_INPUTS:
        # The loss keeps a fixed value it accepts and a search over pooling encoders only,
        # and sets the rest. A fixed zero diagonal keeps the user id out.
        if path in space.fixed:
            return path != "model.user_tower.history" or space.fixed[path] in POOLING_HISTORIES
        if path == "model.user_tower.use_user_id" and space.fixed.get("model.loss.zero_diagonal") is True:
            return False
        return _space_pools_history(space)
    condition = _CONDITIONS.get(path)
    if condition is not None and not condition(values):
        return False
    if _reconstruction(values) and (path in _PAIR_LOSS_SEARCH or path.startswith(_FEATURE_PREFIX)):
        return path in space.fixed
    return True


def _suggest_one(trial: optuna.Trial, path: str, param: Param) -> Any:
    if param.kind == "categorical":
        return trial.suggest_categorical(path, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(path, int(param.low), int(param.high), log=param.log, step=param.step or 1)
    return trial.suggest_float(path, float(param.low), float(param.high), log=param.log)


def sample_values(trial: optuna.Trial, space: SearchSpace) -> Values:
    """Suggest every active parameter of ``space``; fixed values are included as they are."""
    values: Values = dict(space.fixed)
    for path, param in space.params.items():
        if is_active(path, values, space):
            values[path] = _suggest_one(trial, path, param)
    return _with_implied({path: value for path, value in values.items() if is_active(path, values, space)})


def _with_implied(values: Values) -> Values:
    """Add the values the reconstruction loss sets to the paths that ``values`` (the active ones) lack."""
    if _reconstruction(values):
        for path, value in _RECONSTRUCTION_TOWER.items():
            values.setdefault(path, value)
        if "model.embedding_dim" in values:
            values.setdefault("model.item_tower.id_dim", values["model.embedding_dim"])
    return values


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    node = tree
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InputError(f"search space path {path!r} goes through a value that is not a table")
    node[leaf] = value


def build_config(values: Values) -> RunConfig:
    """Build the training configuration from flat dotted values, with clear errors."""
    tree: dict[str, Any] = {}
    features: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        if path.startswith(_FEATURE_PREFIX):
            name, _, field_name = path[len(_FEATURE_PREFIX):].rpartition(".")
            if not name:
                raise InputError(f"search space path {path!r} must look like {_FEATURE_PREFIX}NAME.dim")
            features.setdefault(name, {"name": name})[field_name] = value
        else:
            _set(tree, path, value)
    if features:
        _set(tree, "model.item_tower.features", list(features.values()))
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        raise InputError(f"the search space gives an invalid configuration:\n{format_validation_error(exc)}") from exc


def _flatten(tree: dict[str, Any], prefix: str = "") -> Values:
    values: Values = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            values.update(_flatten(value, path + "."))
        else:
            values[path] = value
    return values


def _in_domain(param: Param, value: Any) -> bool:
    if param.kind == "categorical":
        return value in param.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return float(param.low) <= value <= float(param.high)


def default_trial_params(space: SearchSpace, config: RunConfig | None = None) -> Values:
    """Return the parameters of ``config`` (the default RunConfig) that the space can express, for a first trial.

    A search then starts from a configuration known to train well; parameters whose
    value lies outside the space are left for the sampler.
    """
    defaults = _flatten((config or RunConfig()).model_dump(mode="json"))
    values: Values = dict(space.fixed)
    params: Values = {}
    for path, param in space.params.items():
        if path in defaults and is_active(path, values, space) and _in_domain(param, defaults[path]):
            values[path] = params[path] = defaults[path]
    return params


def _offers(space: SearchSpace, path: str, value: Any) -> bool:
    if path in space.fixed:
        return space.fixed[path] == value
    param = space.params.get(path)
    return param is not None and _in_domain(param, value)


def seed_trial_params(space: SearchSpace, *, ordered: bool = False) -> list[Values]:
    """Return the first trials of a new study: the default configuration, the
    linear-autoencoder configuration where the space allows the reconstruction loss
    (the 1,024-dimension one where the space offers that size), and for ``ordered``
    (time-ordered) logs a session model."""
    if "model.loss.kind" in space.fixed:
        kinds = {space.fixed["model.loss.kind"]}
    elif "model.loss.kind" in space.params:
        kinds = set(space.params["model.loss.kind"].choices)
    else:
        kinds = {RunConfig().model.loss.kind}
    autoencoder = default_trial_params(space, RunConfig(model=RECONSTRUCTION_MODEL, train=RECONSTRUCTION_TRAIN))
    wide = default_trial_params(space, RunConfig(model=WIDE_RECONSTRUCTION_MODEL, train=WIDE_RECONSTRUCTION_TRAIN))
    # The wide seed was tuned with the zero diagonal. Where the space rules that out, the
    # 128-dimension seed, tuned without it, is used.
    if _offers(space, "model.embedding_dim", WIDE_RECONSTRUCTION_MODEL.embedding_dim) and (
        {**space.fixed, **wide}.get("model.loss.zero_diagonal") is True
    ):
        autoencoder = wide
    if kinds == {"reconstruction"}:
        return [autoencoder]
    seeds = [default_trial_params(space)]
    if "reconstruction" in kinds:
        seeds.append(autoencoder)
    if ordered and SESSION_MODEL.loss.kind in kinds:
        seeds.append(default_trial_params(space, RunConfig(model=SESSION_MODEL)))
    return seeds


def suggest_config(trial: optuna.Trial, space: SearchSpace) -> RunConfig:
    """Suggest a configuration for ``trial`` and record it in the trial's attributes."""
    config = build_config(sample_values(trial, space))
    trial.set_user_attr("config", config.model_dump(mode="json"))
    return config
