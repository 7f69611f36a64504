from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from recsearch.data import load_dataset
from recsearch.datasets import SyntheticConfig, generate_clicklog
from recsearch.ingest import IngestConfig, IngestResult, ingest


@pytest.fixture(scope="session")
def small_log() -> pl.DataFrame:
    return generate_clicklog(SyntheticConfig(n_users=150, n_items=120, n_categories=8, n_brands=10, seed=7))


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(tmp_path: Path, source: Path, **options: Any) -> IngestResult:
    options.setdefault("out", tmp_path / "dataset")
    return ingest(IngestConfig(input=source, **options))


def interactions(result: IngestResult, name: str = "interactions") -> pl.DataFrame:
    """Return a table of the dataset with user and item ids joined back in."""
    root = result.out
    table = pl.read_parquet(root / f"{name}.parquet")
    users = pl.read_parquet(root / "users.parquet").select("user_idx", "user_id")
    items = pl.read_parquet(root / "items.parquet").select("item_idx", "item_id")
    return table.join(users, on="user_idx").join(items, on="item_idx")


__all__ = ["interactions", "load_dataset", "run", "write_text"]
