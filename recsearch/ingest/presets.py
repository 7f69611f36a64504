"""Known log layouts and the common spellings of user, item, time and event columns."""

from __future__ import annotations

from dataclasses import dataclass, field

from recsearch.errors import InputError


@dataclass(frozen=True)
class Preset:
    """Column names, reading options and event weights of one known log layout."""

    user_col: tuple[str, ...]
    item_col: tuple[str, ...]
    time_col: tuple[str, ...] = ()
    event_col: tuple[str, ...] = ()
    weight_col: tuple[str, ...] = ()
    session_col: tuple[str, ...] = ()
    time_unit: str | None = None
    event_weights: dict[str, float] | None = None
    # Header-less files of this layout, by lower-case file name: the column names.
    headerless: dict[str, tuple[str, ...]] = field(default_factory=dict)


_GENERIC = Preset(
    user_col=("user_id", "userid", "user", "visitorid", "visitor_id", "customer_id", "customerid", "uid"),
    item_col=("item_id", "itemid", "item", "product_id", "productid", "movie_id", "movieid", "sku", "iid"),
    time_col=("timestamp", "time", "ts", "event_time", "datetime", "date", "created_at"),
    event_col=("event", "event_type", "eventtype", "behavior_type", "behaviour_type", "action"),
    weight_col=(),
    session_col=("session_id", "sessionid", "session"),
)

PRESETS: dict[str, Preset] = {
    "generic": _GENERIC,
    # MovieLens: u.data (tab, no header), ratings.dat ("::", no header) and ratings.csv
    # (header userId,movieId,rating,timestamp; some copies have user_id,movie_id,rating).
    "movielens": Preset(
        user_col=("userid", "user_id", "user"),
        item_col=("movieid", "movie_id", "item_id", "item"),
        time_col=("timestamp",),
        weight_col=("rating",),
        time_unit="s",
        headerless={
            "u.data": ("user_id", "movie_id", "rating", "timestamp"),
            "ratings.dat": ("user_id", "movie_id", "rating", "timestamp"),
        },
    ),
    # RetailRocket events.csv: timestamp (ms), visitorid, event, itemid, transactionid.
    "retailrocket": Preset(
        user_col=("visitorid",),
        item_col=("itemid",),
        time_col=("timestamp",),
        event_col=("event",),
        time_unit="ms",
        event_weights={"view": 1.0, "addtocart": 3.0, "transaction": 5.0},
    ),
    # Taobao UserBehavior.csv: header-less user, item, category, behaviour, Unix seconds.
    "taobao": Preset(
        user_col=("user_id",),
        item_col=("item_id",),
        time_col=("timestamp",),
        event_col=("behavior_type",),
        time_unit="s",
        event_weights={"pv": 1.0, "fav": 2.0, "cart": 3.0, "buy": 5.0},
        headerless={"*": ("user_id", "item_id", "category_id", "behavior_type", "timestamp")},
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise InputError(f"unknown --preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def headerless_columns(preset: Preset, file_name: str) -> tuple[str, ...] | None:
    """Return the column names a preset gives a header-less file, if it is one."""
    name = file_name.lower()
    for suffix in (".gz", ".gzip"):
        name = name.removesuffix(suffix)
    return preset.headerless.get(name) or preset.headerless.get("*")


def resolve_column(
    role: str, explicit: str | None, candidates: tuple[str, ...], available: list[str], required: bool
) -> str | None:
    """Pick the column for one role: the explicit name, or the first candidate present.

    Candidates match case-insensitively; an explicit name must match exactly.
    """
    if explicit is not None:
        if explicit not in available:
            raise InputError(
                f"--{role}-col {explicit!r} is not a column of the input; columns found: "
                f"{', '.join(available)}"
            )
        return explicit
    lower = {name.lower(): name for name in available}
    for candidate in candidates:
        if candidate in lower:
            return lower[candidate]
    if required:
        hint = ""
        if available and all(_looks_like_value(name) for name in available):
            hint = " The first row looks like data, not a header: name the columns with --columns."
        elif len(available) == 1:
            hint = " The header was read as only one column: set the field separator with --separator."
        raise InputError(
            f"no {role} column found; columns found: {', '.join(available)}. "
            f"Name it with --{role}-col.{hint}"
        )
    return None


def _looks_like_value(name: str) -> bool:
    stripped = name.replace(".", "").replace("-", "").replace(":", "").strip()
    return stripped.isdigit() or name.lower() in {"pv", "buy", "cart", "fav", "view"}
