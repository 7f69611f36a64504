"""A deterministic synthetic e-commerce click log with a signal a model can learn.

Each user has a taste: a few favourite item categories with Dirichlet weights. Items belong to one category and one brand and have a power-law
popularity. A session picks one category from the user's taste and views items of
that category in proportion to their popularity. Popularity alone explains the
item choice inside a category, but the category choice is personal, so a
collaborative model that learns it beats a popularity ranking. Views convert to
add-to-cart and carts to purchases with fixed rates, forming the funnel.

Everything is drawn with NumPy in vectorised form, so tens of millions of rows take
seconds, and the same seed gives the same log.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recsearch.errors import InputError

_EPOCH_START = 1_725_148_800  # 2024-09-01T00:00:00Z, the first day of the synthetic log
_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and shape of a synthetic click log."""

    n_users: int = 2_000
    n_items: int = 1_500
    n_categories: int = 30
    n_brands: int = 60
    sessions_per_user: float = 6.0  # mean of a Poisson draw, at least one session each
    views_per_session: float = 5.0  # mean of a Poisson draw, at least one view each
    n_favourite_categories: int = 3  # categories a user's sessions mostly come from
    exploration_rate: float = 0.1  # share of sessions in a category drawn uniformly at random
    popularity_exponent: float = 1.1  # Zipf exponent of item popularity within the catalogue
    cart_rate: float = 0.12  # probability that a view leads to an add-to-cart
    purchase_rate: float = 0.35  # probability that an add-to-cart leads to a purchase
    n_days: int = 60  # length of the period covered by the log
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_categories", "n_brands", "n_days"):
            value = getattr(self, name)
            if value < 1:
                raise InputError(f"{name} must be at least 1, got {value}")
        if self.n_categories > self.n_items:
            raise InputError(
                f"n_categories ({self.n_categories}) must not exceed n_items ({self.n_items})"
            )
        if self.n_favourite_categories < 1:
            raise InputError(f"n_favourite_categories must be at least 1, got {self.n_favourite_categories}")
        for name in ("cart_rate", "purchase_rate", "exploration_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be within [0, 1], got {value}")
        for name in ("sessions_per_user", "views_per_session"):
            value = getattr(self, name)
            if value < 1:
                raise InputError(f"{name} must be at least 1, got {value}")

    @classmethod
    def for_events(cls, n_events: int, seed: int = 0) -> "SyntheticConfig":
        """Return a configuration sized to produce about ``n_events`` rows."""
        if n_events < 100:
            raise InputError(f"n_events must be at least 100, got {n_events}")
        base = cls(seed=seed)
        # A user produces sessions * views * (1 + cart + cart * purchase) rows on average.
        rows_per_user = base.sessions_per_user * base.views_per_session * (
            1 + base.cart_rate + base.cart_rate * base.purchase_rate
        )
        n_users = max(50, int(round(n_events / rows_per_user)))
        # Grow the catalogue sub-linearly, as real shops do.
        n_items = max(100, int(40 * n_users**0.75))
        return cls(
            n_users=n_users,
            n_items=n_items,
            n_categories=min(n_items, max(10, n_items // 50)),
            n_brands=min(n_items, max(20, n_items // 25)),
            seed=seed,
        )


def _item_catalogue(config: SyntheticConfig, rng: np.random.Generator):
    n_items, n_categories = config.n_items, config.n_categories
    # Every category gets at least one item; the rest are spread at random.
    category = np.concatenate(
        [np.arange(n_categories), rng.integers(0, n_categories, n_items - n_categories)]
    )
    rng.shuffle(category)
    brand = rng.integers(0, config.n_brands, n_items)
    ranks = rng.permutation(n_items) + 1
    popularity = 1.0 / ranks.astype(np.float64) ** config.popularity_exponent
    return category, brand, popularity


def _category_samplers(category: np.ndarray, popularity: np.ndarray, n_categories: int):
    """Return items ordered by category with per-category cumulative popularity."""
    order = np.argsort(category, kind="stable")
    sorted_popularity = popularity[order]
    sorted_category = category[order]
    starts = np.searchsorted(sorted_category, np.arange(n_categories), side="left")
    ends = np.searchsorted(sorted_category, np.arange(n_categories), side="right")
    cumulative = np.cumsum(sorted_popularity)
    before = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0.0)
    mass = cumulative[ends - 1] - before
    return order, cumulative, before, mass


def generate_clicklog(config: SyntheticConfig | None = None) -> pl.DataFrame:
    """Generate the click log as a DataFrame sorted by user and time.

    Columns: ``user_id``, ``item_id``, ``category``, ``brand`` (strings), ``event``
    (``view``, ``addtocart`` or ``purchase``), ``timestamp`` (Unix seconds) and
    ``session_id``.
    """
    config = config or SyntheticConfig()
    rng = np.random.default_rng(config.seed)
    category, brand, popularity = _item_catalogue(config, rng)
    order, cumulative, before, mass = _category_samplers(category, popularity, config.n_categories)

    # Sessions: each user gets at least one, each picks a category from the user's taste:
    # a few favourite categories with Dirichlet weights, plus a little exploration.
    n_favourites = min(config.n_favourite_categories, config.n_categories)
    favourites = rng.integers(0, config.n_categories, (config.n_users, n_favourites))  # (U, F)
    taste_cdf = np.cumsum(rng.dirichlet(np.full(n_favourites, 1.0), config.n_users), axis=1)  # (U, F)
    sessions = 1 + rng.poisson(config.sessions_per_user - 1, config.n_users)
    session_user = np.repeat(np.arange(config.n_users), sessions)  # (S,)
    draw = rng.random(session_user.shape[0])
    slot = np.minimum((taste_cdf[session_user] < draw[:, None]).sum(axis=1), n_favourites - 1)
    session_category = favourites[session_user, slot]
    explore = rng.random(session_user.shape[0]) < config.exploration_rate
    session_category[explore] = rng.integers(0, config.n_categories, int(explore.sum()))
    session_start = _EPOCH_START + rng.integers(0, config.n_days * _SECONDS_PER_DAY, session_user.shape[0])

    # Views: items of the session's category, drawn by popularity (inverse CDF).
    views = 1 + rng.poisson(config.views_per_session - 1, session_user.shape[0])
    view_session = np.repeat(np.arange(session_user.shape[0]), views)  # (V,)
    view_category = session_category[view_session]
    target = before[view_category] + rng.random(view_session.shape[0]) * mass[view_category]
    position = np.searchsorted(cumulative, target, side="right")
    view_item = order[np.minimum(position, config.n_items - 1)]
    step = np.arange(view_session.shape[0]) - np.repeat(np.cumsum(views) - views, views)
    view_time = session_start[view_session] + step * 45 + rng.integers(0, 30, view_session.shape[0])

    # Funnel: some views become carts, some carts become purchases, each a little later.
    carted = rng.random(view_session.shape[0]) < config.cart_rate
    cart_index = np.flatnonzero(carted)
    bought = rng.random(cart_index.shape[0]) < config.purchase_rate
    buy_index = cart_index[bought]

    event_session = np.concatenate([view_session, view_session[cart_index], view_session[buy_index]])
    event_item = np.concatenate([view_item, view_item[cart_index], view_item[buy_index]])
    event_time = np.concatenate([view_time, view_time[cart_index] + 20, view_time[buy_index] + 300])
    event_kind = np.concatenate(
        [
            np.zeros(view_session.shape[0], np.int8),
            np.ones(cart_index.shape[0], np.int8),
            np.full(buy_index.shape[0], 2, np.int8),
        ]
    )

    frame = pl.DataFrame(
        {
            "user": session_user[event_session].astype(np.int64),
            "item": event_item.astype(np.int64),
            "category_code": category[event_item].astype(np.int64),
            "brand_code": brand[event_item].astype(np.int64),
            "event_code": event_kind,
            "timestamp": event_time.astype(np.int64),
            "session": event_session.astype(np.int64),
        }
    )
    event_names = {0: "view", 1: "addtocart", 2: "purchase"}
    return (
        frame.sort(["user", "timestamp", "event_code"])
        .with_columns(
            pl.format("u{}", pl.col("user").cast(pl.String).str.zfill(6)).alias("user_id"),
            pl.format("i{}", pl.col("item").cast(pl.String).str.zfill(6)).alias("item_id"),
            pl.format("c{}", pl.col("category_code").cast(pl.String).str.zfill(3)).alias("category"),
            pl.format("b{}", pl.col("brand_code").cast(pl.String).str.zfill(3)).alias("brand"),
            pl.col("event_code").replace_strict(event_names, return_dtype=pl.String).alias("event"),
            pl.format("s{}", pl.col("session")).alias("session_id"),
        )
        .select("user_id", "item_id", "category", "brand", "event", "timestamp", "session_id")
    )


def write_clicklog(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write a click log in the format given by its file name (.csv, .tsv, .parquet, .ndjson, plus .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    compressed = name.endswith(".gz")
    if compressed:
        name = name[: -len(".gz")]
    target = path.with_name(path.name[: -len(".gz")]) if compressed else path

    if name.endswith(".csv"):
        frame.write_csv(target)
    elif name.endswith(".tsv"):
        frame.write_csv(target, separator="\t")
    elif name.endswith(".parquet"):
        if compressed:
            raise InputError(f"{path}: Parquet is compressed inside the file; drop the .gz suffix")
        frame.write_parquet(target)
    elif name.endswith((".ndjson", ".jsonl")):
        frame.write_ndjson(target)
    else:
        raise InputError(
            f"cannot tell the format of {path}: use a name ending in .csv, .tsv, .parquet, .ndjson or .jsonl"
        )

    if compressed:
        with open(target, "rb") as source, gzip.open(path, "wb", compresslevel=5) as sink:
            shutil.copyfileobj(source, sink, length=1 << 20)
        target.unlink()
    return path
