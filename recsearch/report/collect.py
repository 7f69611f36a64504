"""Gather every section of the offline report from a RUN_DIR, its study and its DATA_DIR."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recsearch import __version__
from recsearch.data import load_dataset
from recsearch.errors import InputError, ModelDirError
from recsearch.model_dir import read_manifest
from recsearch.report.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
from recsearch.report.data_section import collect_data
from recsearch.report.evaluation_section import (
    RANKING_KS,
    collect_segments,
    compare_models,
    example_users,
    rank_models,
)
from recsearch.report.schema import ExportInfo, Figure, Report, Series, Training
from recsearch.report.search_section import collect_search, load_study, read_search_summary

logger = logging.getLogger(__name__)

# Folders of RUN_DIR searched in this order for a MODEL_DIR when none is given.
EXPORT_CANDIDATES = ("export", "model", "model_dir")


@dataclass(frozen=True)
class ReportConfig:
    """Input locations of the report and the settings of its bootstrap intervals."""

    data_dir: Path | None = None  # default: the study's data_dir, else winner/metrics.json
    model_dir: Path | None = None  # default: the first of RUN_DIR/export, model, model_dir with a manifest
    storage: str | None = None  # default: the storage URL in search.json
    n_resamples: int = DEFAULT_RESAMPLES  # bootstrap resamples of the test users
    confidence: float = DEFAULT_CONFIDENCE
    seed: int = 0  # of the bootstrap draws

    def __post_init__(self) -> None:
        if self.n_resamples < 100:
            raise InputError(f"the bootstrap needs at least 100 resamples, got {self.n_resamples}")
        if not 0.5 <= self.confidence < 1.0:
            raise InputError(f"the confidence level must be within [0.5, 1), got {self.confidence}")


def build_report(run_dir: str | Path, config: ReportConfig = ReportConfig()) -> Report:
    """Read a search run and re-score its models on the test split; return the report's content."""
    run_dir = Path(run_dir)
    if not (run_dir / "winner" / "model.pt").is_file():
        raise InputError(
            f"{run_dir} has no winner/model.pt; the report needs a finished `recsearch search` run "
            "whose winning trial ran on this machine"
        )
    summary = read_search_summary(run_dir)
    study = load_study(summary, config.storage)
    data_dir = resolve_data_dir(run_dir, study.user_attrs.get("data_dir"), config.data_dir)
    dataset = load_dataset(data_dir)
    if len(dataset.test) == 0:
        raise InputError(f"dataset {data_dir} has an empty test split; the report compares models on test")

    started = time.perf_counter()
    data, figures = collect_data(dataset)
    search, board, search_figures = collect_search(study, summary)
    figures += search_figures
    logger.debug("read the data and the study in %.2f s", time.perf_counter() - started)

    started = time.perf_counter()
    models = rank_models(run_dir, dataset, RANKING_KS)
    evaluation = _read_json(run_dir / "evaluation.json")
    comparison, comparison_figures = compare_models(
        models, n_resamples=config.n_resamples, confidence=config.confidence, seed=config.seed,
        protocol=_protocol(evaluation),
    )
    segments, segment_figures = collect_segments(models, dataset, comparison.best_baseline)
    logger.debug("ranked the test split with %d models in %.2f s", len(models), time.perf_counter() - started)

    training, training_figures = collect_training(run_dir, evaluation)
    figures += comparison_figures + segment_figures + training_figures
    return Report(
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        recsearch_version=__version__,
        run_dir=str(run_dir.resolve()),
        data_dir=str(Path(data_dir).resolve()),
        data=data,
        search=search,
        leaderboard=board,
        comparison=comparison,
        segments=segments,
        training=training,
        export=collect_export(run_dir, config.model_dir),
        examples=example_users(dataset, models[0].ranking),
        figures=figures,
    )


def resolve_data_dir(run_dir: Path, study_data_dir: str | None, override: Path | None) -> Path:
    """Return the run's DATA_DIR: the override, else the study's record, else winner/metrics.json."""
    if override is not None:
        return override
    candidates = [study_data_dir, _read_json(run_dir / "winner" / "metrics.json").get("dataset", {}).get("root")]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise InputError(
        f"the dataset of {run_dir} was not found (recorded as {candidates[0] or candidates[1]}); "
        "pass its directory with --data"
    )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _protocol(evaluation: dict[str, Any]) -> dict[str, Any]:
    protocol = {
        "winner": "winning trial's model, trained on the train split, ranked on test",
        "baselines": "fitted on train (EASE regularisation chosen on validation), ranked on test",
        "excluded_from_ranking": "each user's train and validation items",
        "ranking": "full catalogue, binary relevance: a test item is relevant",
        "intervals": "percentile bootstrap over test users, paired across models, no correction for multiple comparisons",
    }
    protocol.update({key: value for key, value in evaluation.get("protocol", {}).items() if value})
    return protocol


def collect_training(run_dir: Path, evaluation: dict[str, Any]) -> tuple[Training, list[Figure]]:
    """Return the winner's per-epoch history and its training curves."""
    metrics = _read_json(run_dir / "winner" / "metrics.json")
    history = [{key: float(value) for key, value in row.items()} for row in metrics.get("history", [])]
    training = Training(
        monitor=str(metrics.get("monitor", "val_ndcg@10")),
        best_epoch=metrics.get("best_epoch"),
        n_epochs=int(metrics.get("n_epochs", len(history))),
        train_seconds=metrics.get("train_seconds"),
        history=history,
        refit_epochs=evaluation.get("epochs"),
    )
    if not history:
        return training, []

    # Lightning counts epochs from 0; the figures count them from 1.
    epochs = [int(row["epoch"]) + 1 for row in history]
    loss_kind = _read_json(run_dir / "winner" / "config.json").get("model", {}).get("loss", {}).get("kind")
    figures = []
    if any("train_loss" in row for row in history):
        figures.append(Figure(
            id="training-loss", section="training", title="Training loss of the winner", kind="line",
            x_label="epoch", y_label="training loss (mean per example)",
            series=[Series("train loss", epochs, [row.get("train_loss") for row in history], mode="lines+markers")],
            note=f"Loss: {loss_kind}; values of different losses are not comparable." if loss_kind else "",
        ))
    # Hit rate equals recall when each user has one held-out item, so only NDCG and recall are drawn.
    validation = sorted({key for row in history for key in row if key.startswith(("val_ndcg", "val_recall"))})
    if validation:
        best = training.best_epoch
        figures.append(Figure(
            id="training-validation", section="training", title="Validation metrics of the winner by epoch",
            kind="line", x_label="epoch", y_label="validation metric (0 to 1)",
            series=[
                Series(key.removeprefix("val_"), epochs, [row.get(key) for row in history], mode="lines+markers")
                for key in validation
            ],
            note="" if best is None else f"The kept weights are those of epoch {best + 1}, the best by {training.monitor}.",
        ))
    return training, figures


def collect_export(run_dir: Path, model_dir: Path | None) -> ExportInfo:
    """Return the exported index's measured recall and latency, or a note that the run was not exported."""
    candidates = [model_dir] if model_dir is not None else [run_dir / name for name in EXPORT_CANDIDATES]
    for candidate in candidates:
        if not (candidate / "manifest.json").is_file():
            continue
        try:
            manifest = read_manifest(candidate)
        except ModelDirError as exc:
            logger.warning("ignoring %s: %s", candidate, exc)
            return ExportInfo(exported=False, model_dir=str(candidate), note=f"the model directory is unreadable: {exc}")
        index = manifest.get("index", {})
        return ExportInfo(
            exported=True,
            model_dir=str(candidate.resolve()),
            note=str(index.get("latency_note", "")),
            index={key: value for key, value in index.items() if key != "tried"},
            model_version=manifest.get("model_version"),
            embedding_dim=manifest.get("embedding_dim"),
        )
    if model_dir is not None:
        raise InputError(f"{model_dir} has no manifest.json; pass a directory written by `recsearch export`")
    return ExportInfo(
        exported=False, model_dir=None,
        note="The run has not been exported: no manifest.json in RUN_DIR/export (or pass --model-dir).",
    )
