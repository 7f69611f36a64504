"""Read a dataset directory into NumPy arrays for training and evaluation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsearch.data import layout
from recsearch.errors import DatasetFormatError


@dataclass(frozen=True)
class Interactions:
    """One table of (user, item) pairs as parallel arrays of equal length.

    ``last_time`` contains microseconds since the Unix epoch (UTC), or is ``None``
    when the log had no timestamps.
    """

    user: np.ndarray  # (N,) int32 user index
    item: np.ndarray  # (N,) int32 item index
    weight: np.ndarray  # (N,) float32 summed event weight
    n_events: np.ndarray  # (N,) int32 events merged into the pair
    last_time: np.ndarray | None  # (N,) int64 microseconds, or None

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @classmethod
    def concat(cls, *tables: "Interactions") -> "Interactions":
        """Stack tables of disjoint pairs (the splits of one dataset) into one."""
        times = [t.last_time for t in tables]
        return cls(
            user=np.concatenate([t.user for t in tables]),
            item=np.concatenate([t.item for t in tables]),
            weight=np.concatenate([t.weight for t in tables]),
            n_events=np.concatenate([t.n_events for t in tables]),
            last_time=None if any(t is None for t in times) else np.concatenate(times),
        )

    def head(self, n: int) -> "Interactions":
        return Interactions(
            self.user[:n], self.item[:n], self.weight[:n], self.n_events[:n],
            None if self.last_time is None else self.last_time[:n],
        )

    def user_items(self, n_users: int, n_items: int) -> "CsrMatrix":
        """Return the user-by-item matrix of these pairs (users are rows, values are weights)."""
        return CsrMatrix.from_pairs(self.user, self.item, self.weight, n_users, n_items)


@dataclass(frozen=True)
class CsrMatrix:
    """A compressed sparse row matrix held as three NumPy arrays, rows sorted by column."""

    indptr: np.ndarray  # (n_rows + 1,) int64
    indices: np.ndarray  # (nnz,) int32
    data: np.ndarray  # (nnz,) float32
    shape: tuple[int, int]

    @classmethod
    def from_pairs(
        cls, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int
    ) -> "CsrMatrix":
        order = np.lexsort((cols, rows))
        counts = np.bincount(rows, minlength=n_rows)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            indptr=indptr,
            indices=cols[order].astype(np.int32, copy=False),
            data=values[order].astype(np.float32, copy=False),
            shape=(n_rows, n_cols),
        )

    def row(self, i: int) -> np.ndarray:
        return self.indices[self.indptr[i] : self.indptr[i + 1]]


@dataclass(frozen=True)
class Dataset:
    """A loaded DATA_DIR: sizes, split tables, id vocabularies and categorical features."""

    root: Path
    manifest: dict[str, Any]
    n_users: int
    n_items: int
    train: Interactions
    validation: Interactions
    test: Interactions
    user_ids: np.ndarray  # (n_users,) object array of the original id strings
    item_ids: np.ndarray  # (n_items,) object array of the original id strings
    item_features: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_items,) int32
    user_features: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n_users,) int32
    feature_cardinality: dict[str, int] = field(default_factory=dict)  # "item.category" -> size

    @property
    def has_timestamps(self) -> bool:
        return bool(self.manifest["has_timestamps"])

    def merged(self, include_test: bool = False) -> "Dataset":
        """Return a copy whose training split also contains validation (and test), for a refit.

        The merged splits are emptied, so nothing is validated or tested twice.
        """
        parts = [self.train, self.validation] + ([self.test] if include_test else [])
        empty = self.validation.head(0)
        splits = ["train", "validation"] + (["test"] if include_test else [])
        return replace(
            self,
            manifest={**self.manifest, "training_splits": splits},
            train=Interactions.concat(*parts),
            validation=empty,
            test=self.test.head(0) if include_test else self.test,
        )

    def training_view(self, splits: list[str]) -> "Dataset":
        """Return the dataset as a run saw it: ``["train"]``, or merged with validation (and test)."""
        if splits == ["train"]:
            return self
        if splits == ["train", "validation"]:
            return self.merged()
        if splits == ["train", "validation", "test"]:
            return self.merged(include_test=True)
        raise DatasetFormatError(f"unknown training splits {splits}; expected train, then validation, then test")

    def split(self, name: str) -> Interactions:
        if name not in layout.SPLIT_NAMES:
            raise ValueError(f"unknown split {name!r}; expected one of {', '.join(layout.SPLIT_NAMES)}")
        return getattr(self, name)


def read_manifest(root: str | Path) -> dict[str, Any]:
    """Read and check ``dataset.json``; raise DatasetFormatError naming the problem."""
    paths = layout.DatasetPaths(Path(root))
    if not paths.manifest.is_file():
        raise DatasetFormatError(
            f"{paths.root} is not a dataset directory: {paths.manifest.name} is missing; "
            "create one with `recsearch ingest INPUT --out DATA_DIR`"
        )
    try:
        manifest = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{paths.manifest} is not valid JSON: {exc}") from exc

    if manifest.get("format") != layout.DATASET_FORMAT:
        raise DatasetFormatError(
            f"{paths.manifest} has format {manifest.get('format')!r}, expected {layout.DATASET_FORMAT!r}"
        )
    version = manifest.get("format_version")
    if version != layout.DATASET_FORMAT_VERSION:
        raise DatasetFormatError(
            f"{paths.manifest} has format_version {version!r}; this recsearch reads version "
            f"{layout.DATASET_FORMAT_VERSION}: re-run `recsearch ingest` with this version"
        )
    return manifest


def _read_parquet(path: Path, columns: list[str]) -> pl.DataFrame:
    try:
        return pl.read_parquet(path, columns=columns)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatasetFormatError(
            f"dataset file {path} is unreadable ({first_line}); re-run `recsearch ingest` to rewrite it"
        ) from exc


def _check_indices(name: str, table: Interactions, n_users: int, n_items: int) -> None:
    if len(table) == 0:
        return
    if int(table.user.min()) < 0 or int(table.user.max()) >= n_users:
        raise DatasetFormatError(
            f"{name}.parquet has user indices outside 0..{n_users - 1} (n_users in dataset.json); "
            "the directory is inconsistent: re-run `recsearch ingest`"
        )
    if int(table.item.min()) < 0 or int(table.item.max()) >= n_items:
        raise DatasetFormatError(
            f"{name}.parquet has item indices outside 0..{n_items - 1} (n_items in dataset.json); "
            "the directory is inconsistent: re-run `recsearch ingest`"
        )


def _read_interactions(path: Path, has_timestamps: bool) -> Interactions:
    if not path.is_file():
        raise DatasetFormatError(f"dataset file {path} is missing; re-run `recsearch ingest`")
    frame = _read_parquet(path, list(layout.INTERACTION_COLUMNS))
    last_time = None
    if has_timestamps:
        last_time = frame[layout.LAST_TIME].dt.epoch("us").to_numpy().astype(np.int64, copy=False)
    return Interactions(
        user=frame[layout.USER_INDEX].to_numpy().astype(np.int32, copy=False),
        item=frame[layout.ITEM_INDEX].to_numpy().astype(np.int32, copy=False),
        weight=frame[layout.WEIGHT].to_numpy().astype(np.float32, copy=False),
        n_events=frame[layout.N_EVENTS].to_numpy().astype(np.int32, copy=False),
        last_time=last_time,
    )


def _read_entities(path: Path, index: str, id_column: str, features: list[str]) -> pl.DataFrame:
    if not path.is_file():
        raise DatasetFormatError(f"dataset file {path} is missing; re-run `recsearch ingest`")
    frame = _read_parquet(path, [index, id_column, *features]).sort(index)
    if frame.height and frame[index][-1] != frame.height - 1:
        raise DatasetFormatError(f"{path}: indices are not contiguous from 0 to {frame.height - 1}")
    return frame


def load_dataset(root: str | Path) -> Dataset:
    """Load a dataset directory written by ``recsearch ingest``."""
    root = Path(root)
    manifest = read_manifest(root)
    paths = layout.DatasetPaths(root)
    has_timestamps = bool(manifest["has_timestamps"])

    item_feature_names = list(manifest["features"]["item"])
    user_feature_names = list(manifest["features"]["user"])
    users = _read_entities(paths.users, layout.USER_INDEX, layout.USER_ID, user_feature_names)
    items = _read_entities(paths.items, layout.ITEM_INDEX, layout.ITEM_ID, item_feature_names)

    cardinality = {}
    for entity, names in (("item", item_feature_names), ("user", user_feature_names)):
        for name in names:
            cardinality[f"{entity}.{name}"] = int(manifest["features"][entity][name]["cardinality"])

    splits = {name: _read_interactions(paths.split(name), has_timestamps) for name in layout.SPLIT_NAMES}
    for name, table in splits.items():
        _check_indices(name, table, int(manifest["n_users"]), int(manifest["n_items"]))
    if users.height != int(manifest["n_users"]) or items.height != int(manifest["n_items"]):
        raise DatasetFormatError(
            f"{root}: users.parquet has {users.height} rows and items.parquet {items.height}, but dataset.json "
            f"says n_users={manifest['n_users']} and n_items={manifest['n_items']}; re-run `recsearch ingest`"
        )
    return Dataset(
        root=root,
        manifest=manifest,
        n_users=int(manifest["n_users"]),
        n_items=int(manifest["n_items"]),
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        user_ids=users[layout.USER_ID].to_numpy(),
        item_ids=items[layout.ITEM_ID].to_numpy(),
        item_features={n: items[n].to_numpy().astype(np.int32) for n in item_feature_names},
        user_features={n: users[n].to_numpy().astype(np.int32) for n in user_feature_names},
        feature_cardinality=cardinality,
    )
