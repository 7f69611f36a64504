"""After a search: retrain the winner on more data and score it once on the untouched test split.

Three numbers come out, all from the shared evaluator on the test split:

- the winning trial's own model (trained on the training split), beside the
  baselines, which are fitted on the same training split: a like-for-like comparison;
- the refit: the winning configuration retrained on training plus validation for the
  number of epochs the trial found best, which is the model a user would ship;
- optionally a final model refit on every interaction (test included) for export,
  which has no test score by construction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsearch.data import Dataset
from recsearch.evaluate import DEFAULT_KS, baselines_not_beaten, evaluate_split, evaluation_split, run_baselines
from recsearch.train import RunConfig, TwoTowerScorer, UserHistory, load_trained_model, train_model

logger = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
REFIT_DIR = "refit"
FINAL_DIR = "final"
HEADLINE_METRIC = "ndcg@10"


@dataclass
class RefitResult:
    """Test metrics of the winner, its refit and the baselines, and where the models are."""

    epochs: int
    winner_test: dict[str, float]
    refit_test: dict[str, float]
    baselines: dict[str, dict[str, float]]
    not_beaten: list[str]
    refit_dir: Path
    final_dir: Path | None = None
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def best_baseline(self) -> tuple[str, float] | None:
        if not self.baselines:
            return None
        name = max(self.baselines, key=lambda n: self.baselines[n].get(HEADLINE_METRIC, float("-inf")))
        return name, self.baselines[name].get(HEADLINE_METRIC, float("nan"))


def _test_metrics_of_run(run_dir: Path, dataset: Dataset) -> dict[str, float]:
    network = load_trained_model(run_dir, dataset)
    history = None
    if network.uses_history:
        history, _ = UserHistory.from_tables(dataset.n_users, dataset.train, dataset.validation)
    test = evaluation_split(dataset, "test")
    return evaluate_split(TwoTowerScorer(network, history), test, ks=DEFAULT_KS).summary()


def refit_winner(
    dataset: Dataset,
    run_dir: Path,
    winner_dir: Path,
    best_epoch: int | None,
    *,
    final: bool = True,
    baselines: bool = True,
) -> RefitResult:
    """Refit the configuration in ``winner_dir`` and write ``evaluation.json`` into ``run_dir``."""
    config = RunConfig.from_json((winner_dir / "config.json").read_text(encoding="utf-8"))
    # best_epoch counts from 0; without one, keep the configured epoch count.
    epochs = (best_epoch + 1) if best_epoch is not None else config.train.max_epochs
    fixed = config.model_copy(update={"train": config.train.model_copy(update={"max_epochs": epochs})})

    winner_test = _test_metrics_of_run(winner_dir, dataset) if len(dataset.test) else {}
    baseline_results = run_baselines(dataset, split="test") if baselines and len(dataset.test) else {}
    baseline_metrics = {name: result.metrics for name, result in baseline_results.items()}
    not_beaten = baselines_not_beaten(winner_test, baseline_results) if baseline_results and winner_test else []

    refit_dir = run_dir / REFIT_DIR
    refit = train_model(dataset.merged(), fixed, refit_dir, select_best=False, evaluate_test=True)
    final_dir = None
    if final:
        final_dir = run_dir / FINAL_DIR
        train_model(dataset.merged(include_test=True), fixed, final_dir, select_best=False, evaluate_test=False)

    result = RefitResult(
        epochs=epochs,
        winner_test=winner_test,
        refit_test=refit.test_metrics,
        baselines=baseline_metrics,
        not_beaten=not_beaten,
        refit_dir=refit_dir,
        final_dir=final_dir,
        protocol={
            "winner_test": "winning trial's model, trained on train, ranked on test",
            "baselines": "fitted on train (EASE regularisation chosen on validation), ranked on test",
            "refit_test": f"winning configuration retrained on train + validation for {epochs} epochs, ranked on test",
            "final": "retrained on train + validation + test for export; no test score" if final else None,
            "excluded_from_ranking": "each user's train and validation items",
        },
    )
    _write(result, run_dir)
    return result


def _write(result: RefitResult, run_dir: Path) -> None:
    best = result.best_baseline
    data = {
        "epochs": result.epochs,
        "winner_test": result.winner_test,
        "refit_test": result.refit_test,
        "baselines": result.baselines,
        "best_baseline": {"name": best[0], HEADLINE_METRIC: best[1]} if best else None,
        "baselines_not_beaten": result.not_beaten,
        "refit_dir": str(result.refit_dir),
        "final_dir": str(result.final_dir) if result.final_dir else None,
        "protocol": result.protocol,
    }
    (run_dir / EVALUATION_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if best:
        logger.info(
            "test %s: winner %.4f, refit %.4f, best baseline %s %.4f",
            HEADLINE_METRIC, result.winner_test.get(HEADLINE_METRIC, float("nan")),
            result.refit_test.get(HEADLINE_METRIC, float("nan")), best[0], best[1],
        )
