"""The search space: which configuration fields a search varies, and over what range.

A space is a mapping from a dotted configuration path (``model.embedding_dim``,
``train.learning_rate``, ``model.item_tower.features.category.dim``) to a parameter.
The default space suits most click logs; a TOML or YAML file narrows or widens it:

```toml
[params."model.embedding_dim"]
low = 16
high = 64
log = true

[params."model.loss.kind"]
choices = ["bpr", "sampled_softmax"]

[fixed]
"train.max_epochs" = 8
```

Some parameters only apply when another has a certain value: the number of BPR
negatives only with the BPR loss, the history length only with a history encoder.
The space suggests them only then, so every suggested configuration is valid.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recsearch.errors import InputError
from recsearch.models.config import RECONSTRUCTION_ONLY_FIELDS, LossConfig

# Values of categorical parameters must be what JSON and Optuna's storage can hold.
Choice = str | int | float | bool | None
# Catalogues up to this size get embedding sizes up to 1,024 in the default space: 50,000
# items x 1,024 floats is 200 MB, about 800 MB with Adam's two moments and the gradient.
WIDE_DIMS_MAX_ITEMS = 50_000


@dataclass(frozen=True)
class Param:
    """One searched field: an integer or float range, or a list of choices."""

    kind: str  # "int", "float" or "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None  # int parameters only: spacing of values from low
    choices: tuple[Choice, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("int", "float", "categorical"):
            raise InputError(f"invalid parameter kind {self.kind!r}; expected int, float or categorical")
        if self.kind == "categorical":
            if not self.choices:
                raise InputError("a categorical parameter needs a non-empty list of choices")
            return
        if self.low is None or self.high is None:
            raise InputError(f"an {self.kind} parameter needs both low and high")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise InputError(f"invalid range: low={self.low} must not exceed high={self.high}")
        if self.log and self.low <= 0:
            raise InputError(f"a log-scale range needs low > 0, got low={self.low}")
        if self.kind == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise InputError(f"an int parameter needs whole bounds, got low={self.low}, high={self.high}")
        if self.step is not None and (self.step < 1 or self.kind != "int" or self.log):
            raise InputError(f"step={self.step} applies only to linear int parameters and must be at least 1")


def int_param(low: int, high: int, log: bool = False) -> Param:
    return Param("int", low, high, log)


def float_param(low: float, high: float, log: bool = False) -> Param:
    return Param("float", low, high, log)


def choice(*values: Choice) -> Param:
    return Param("categorical", choices=tuple(values))


@dataclass(frozen=True)
class SearchSpace:
    """Searched parameters by dotted configuration path, plus fields held at a fixed value."""

    params: dict[str, Param]
    fixed: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, params: Mapping[str, Param], fixed: Mapping[str, Any]) -> "SearchSpace":
        merged = {k: v for k, v in self.params.items() if k not in fixed}
        merged.update(params)
        kept_fixed = {k: v for k, v in self.fixed.items() if k not in params}
        kept_fixed.update(fixed)
        return replace(self, params=merged, fixed=kept_fixed)

    def to_json(self) -> dict[str, Any]:
        return {
            "params": {name: _param_json(p) for name, p in self.params.items()},
            "fixed": dict(self.fixed),
        }


def _param_json(param: Param) -> dict[str, Any]:
    if param.kind == "categorical":
        return {"choices": list(param.choices)}
    data: dict[str, Any] = {"type": param.kind, "low": param.low, "high": param.high, "log": param.log}
    if param.step is not None:
        data["step"] = param.step
    return data


def default_space(
    item_features: tuple[str, ...] = (), n_items: int = 0, n_train: int = 0, sequence_encoders: bool = True
) -> SearchSpace:
    """Return the default space for a dataset with these item features, catalogue and training sizes.

    Batch sizes grow with the training split, so that an epoch of a large log stays at
    a few thousand optimizer steps and a trial fits a search budget. ``sequence_encoders``
    offers the GRU and self-attention history encoders, which cost 50 to 100 times the
    mean pooling per batch on a CPU; the search offers them when a GPU is present.
    """
    histories = ("none", "mean", "sum", "recency") + (("gru", "attention") if sequence_encoders else ())
    # Losses that score the whole catalogue for every example are offered up to the default limit.
    losses = ("bpr", "sampled_softmax")
    if n_items <= LossConfig().max_full_softmax_items:
        losses += ("full_softmax", "reconstruction")
    # Up to 1,024 dimensions where the item table stays small. On MovieLens-1M the linear
    # autoencoder with zero_diagonal reached validation NDCG@10 0.2489 at 1,024 and 0.2455 at 128.
    dims = (16, 32, 64, 128) + ((256, 512, 1024) if n_items <= WIDE_DIMS_MAX_ITEMS else ())
    params: dict[str, Param] = {
        # First, as the loss decides which user-tower and batch parameters apply (see suggest.py).
        "model.loss.kind": choice(*losses),
        "model.embedding_dim": choice(*dims),
        "model.user_tower.id_dim": int_param(8, 256, log=True),
        "model.item_tower.id_dim": int_param(8, 256, log=True),
        "model.user_tower.history": choice(*histories),
        "model.user_tower.history_length": int_param(5, 50, log=True),
        "model.user_tower.use_user_id": choice(True, False),
        "model.user_tower.recency_decay": float_param(0.5, 0.99),
        "model.user_tower.mlp.depth": int_param(0, 2),
        "model.item_tower.mlp.depth": int_param(0, 2),
        "model.user_tower.mlp.width": choice(64, 128, 256),
        "model.item_tower.mlp.width": choice(64, 128, 256),
        "model.user_tower.mlp.activation": choice("relu", "gelu"),
        "model.item_tower.mlp.activation": choice("relu", "gelu"),
        "model.user_tower.mlp.dropout": float_param(0.0, 0.5),
        "model.item_tower.mlp.dropout": float_param(0.0, 0.5),
        "model.user_tower.mlp.norm": choice("none", "layer"),
        "model.item_tower.mlp.norm": choice("none", "layer"),
        "model.embeddings.n_frequency_tiers": int_param(1, 3),
        "model.embeddings.tier_dim_ratio": float_param(0.25, 0.75),
        "model.l2_normalize": choice(False, True),
        "model.temperature": float_param(0.05, 1.0, log=True),
        "model.loss.n_negatives": int_param(1, 64, log=True),
        "model.loss.input_dropout": float_param(0.0, 0.8),
        "model.loss.hidden_item_weight": float_param(1.0, 5.0),
        "model.loss.l2": float_param(10.0, 1000.0, log=True),
        "model.loss.zero_diagonal": choice(False, True),
        "model.loss.user_weight_exponent": float_param(0.0, 1.0),
        "train.learning_rate": float_param(3e-4, 3e-2, log=True),
        "train.weight_decay": float_param(1e-8, 1e-4, log=True),
        "train.batch_size": _batch_sizes(n_train),
        "train.users_per_batch": choice(128, 256, 512, 1024),
        "train.example_weighting": choice("none", "log"),
    }
    for name in item_features:
        params[f"model.item_tower.features.{name}.dim"] = int_param(4, 64, log=True)
    if n_items > 1_000_000:
        params["model.embeddings.hash_above"] = choice(None, 1_000_000)
    fixed = {"train.max_epochs": 20, "train.patience": 3}
    return SearchSpace(params=params, fixed=fixed)


def _batch_sizes(n_train: int) -> Param:
    if n_train > 2_000_000:
        return choice(4096, 8192, 16384)
    if n_train > 200_000:
        return choice(1024, 2048, 4096, 8192)
    return choice(256, 512, 1024, 2048, 4096)


def _parse_param(name: str, spec: Any) -> Param:
    if not isinstance(spec, Mapping):
        raise InputError(f"search space parameter {name!r} must be a table, e.g. {{low = 8, high = 64}}, got {spec!r}")
    unknown = set(spec) - {"type", "low", "high", "log", "step", "choices"}
    if unknown:
        raise InputError(f"search space parameter {name!r} has unknown keys {sorted(unknown)}; "
                         "use type, low, high, log, step or choices")
    if "choices" in spec:
        values = spec["choices"]
        if not isinstance(values, list) or not values:
            raise InputError(f"search space parameter {name!r}: choices must be a non-empty list")
        return choice(*values)
    kind = spec.get("type")
    if kind is None:
        bounds = (spec.get("low"), spec.get("high"))
        kind = "int" if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) else "float"
    try:
        return Param(kind, spec.get("low"), spec.get("high"), bool(spec.get("log", False)), spec.get("step"))
    except InputError as exc:
        raise InputError(f"search space parameter {name!r}: {exc}") from None


def space_from_json(data: Mapping[str, Any]) -> SearchSpace:
    """Rebuild a space from ``SearchSpace.to_json()``, e.g. the one a study recorded."""
    params = {name: _parse_param(name, spec) for name, spec in (data.get("params") or {}).items()}
    return SearchSpace(params=params, fixed=dict(data.get("fixed") or {}))


# Settings that only some losses read, with those losses. A space file that sets one while
# allowing none of them is rejected, because no trial would use the value.
LOSS_SPECIFIC: dict[str, frozenset[str]] = {
    "model.loss.n_negatives": frozenset({"bpr"}),
    "model.loss.popularity_correction": frozenset({"sampled_softmax"}),
    **{f"model.loss.{name}": frozenset({"reconstruction"}) for name in RECONSTRUCTION_ONLY_FIELDS},
    "train.users_per_batch": frozenset({"reconstruction"}),
    "train.batch_size": frozenset({"bpr", "sampled_softmax", "full_softmax"}),
}


def loss_kinds(space: SearchSpace) -> frozenset[str] | None:
    """Return the loss kinds the space fixes or searches, or None when it leaves the kind to the default."""
    if "model.loss.kind" in space.fixed:
        return frozenset({space.fixed["model.loss.kind"]})
    param = space.params.get("model.loss.kind")
    return frozenset(param.choices) if param is not None and param.choices else None


def load_space(path: str | Path, base: SearchSpace) -> SearchSpace:
    """Read a TOML or YAML space file and apply it on top of ``base``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"search space file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise InputError(f"search space file {path} must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise InputError(f"search space file {path} is not valid: {exc}") from exc
    if not isinstance(data, Mapping):
        raise InputError(f"search space file {path} must contain a table with params and/or fixed")
    unknown = set(data) - {"params", "fixed"}
    if unknown:
        raise InputError(f"search space file {path} has unknown sections {sorted(unknown)}; use params and fixed")

    params = {name: _parse_param(name, spec) for name, spec in (data.get("params") or {}).items()}
    fixed = dict(data.get("fixed") or {})
    for name in [*params, *fixed]:
        if not name.startswith(("model.", "train.")):
            raise InputError(
                f"search space parameter {name!r} must be a dotted path starting with model. or train., "
                "e.g. model.embedding_dim"
            )
    space = base.with_overrides(params, fixed)
    check_loss_settings(space, [*params, *fixed], f"search space file {path}")
    return space


def check_loss_settings(space: SearchSpace, names: list[str], source: str) -> None:
    """Raise InputError naming each setting in ``names`` that none of the space's allowed losses uses."""
    kinds = loss_kinds(space)
    if kinds is None:
        return
    unused = [name for name in names if name in LOSS_SPECIFIC and not LOSS_SPECIFIC[name] & kinds]
    if unused:
        reasons = "; ".join(f"{name} applies only to {' or '.join(sorted(LOSS_SPECIFIC[name]))}" for name in unused)
        raise InputError(
            f"{source} sets values that no allowed loss ({', '.join(sorted(kinds))}) uses: {reasons}. "
            "Remove them, or allow a loss that uses them in model.loss.kind"
        )
