"""Shared fixtures: small logs written by the tests themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two cores on CI: keep the numeric libraries from starting a thread per core each.
os.environ.setdefault("POLARS_MAX_THREADS", "2")

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_dataset(name: str) -> Path:
    """Return a folder of ../shared/datasets, or skip the test when it is absent."""
    path = SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(f"real dataset {name} not found at {path}; it lives in ../shared/datasets beside the project")
    return path
