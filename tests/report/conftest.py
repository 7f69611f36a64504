"""A small real search run, and its report, shared by the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsearch.datasets import SyntheticConfig, make_synthetic_dataset
from recsearch.report import ReportConfig, build_report
from recsearch.report.schema import Report
from recsearch.search import SearchConfig, run_search

# A small space keeps each trial to a few seconds on two CPU cores. Embedding sizes
# differ, so the size figures have more than one point.
REPORT_SPACE = """
[params."model.embedding_dim"]
choices = [8, 16, 32]

[params."train.batch_size"]
choices = [256, 512]

[params."model.user_tower.history"]
choices = ["none", "mean"]

[fixed]
"train.max_epochs" = 2
"train.patience" = 2
"""

N_RESAMPLES = 200  # enough for the interval checks here; the command's default is 1000


@pytest.fixture(scope="session")
def search_run(tmp_path_factory) -> Path:
    """Return RUN_DIR of a three-trial, two-objective search on a synthetic dataset."""
    root = tmp_path_factory.mktemp("report-run")
    space = root / "space.toml"
    space.write_text(REPORT_SPACE, encoding="utf-8")
    data = make_synthetic_dataset(
        root / "data", SyntheticConfig(n_users=300, n_items=200, n_categories=10, n_brands=12, seed=3)
    )
    run_dir = root / "run"
    config = SearchConfig(n_trials=3, space_file=space, objectives=("ndcg", "bytes"), final_model=False, seed=0)
    run_search(data, run_dir, config)
    return run_dir


@pytest.fixture(scope="session")
def report(search_run: Path) -> Report:
    return build_report(search_run, ReportConfig(n_resamples=N_RESAMPLES, seed=0))


@pytest.fixture(scope="session")
def evaluation(search_run: Path) -> dict:
    return json.loads((search_run / "evaluation.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def search_summary(search_run: Path) -> dict:
    return json.loads((search_run / "search.json").read_text(encoding="utf-8"))
