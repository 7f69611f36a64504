"""The leaderboard of a study, the winner by a stated rule, and the Pareto front."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import polars as pl
from optuna.trial import FrozenTrial, TrialState

from recsearch.errors import RecsearchError

SELECT_RULES = ("best", "smallest-within")
SIZE_ATTRIBUTE = "serving_bytes"


class NoCompletedTrialError(RecsearchError):
    """The study has no completed trial to choose a winner from."""


def trial_row(trial: FrozenTrial) -> dict[str, Any]:
    """Return one flat leaderboard row: number, state, objective values, sizes, time, parameters."""
    attrs = trial.user_attrs
    values = trial.values or []
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "ndcg": values[0] if values else None,
        "n_parameters": attrs.get("n_parameters"),
        "serving_bytes": attrs.get("serving_bytes"),
        "best_epoch": attrs.get("best_epoch"),
        "epochs_run": attrs.get("epochs_run"),
        "train_seconds": attrs.get("train_seconds"),
        "duration_seconds": trial.duration.total_seconds() if trial.duration else None,
        "retry_of": trial.system_attrs.get("failed_trial"),
        "pruned_at_epoch": trial.last_step if trial.state == TrialState.PRUNED else None,
        "error": attrs.get("error"),
    }
    for name, value in (attrs.get("validation") or {}).items():
        row[f"val_{name}"] = value
    for name, value in sorted(trial.params.items()):
        row[f"param:{name}"] = value
    return row


def write_leaderboard(study: optuna.Study, run_dir: Path) -> pl.DataFrame:
    """Write every trial, best first, as ``leaderboard.csv`` and ``leaderboard.json``."""
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    if frame.height:
        frame = frame.sort(["ndcg", "number"], descending=[True, False], nulls_last=True)
        csv_frame = frame.with_columns(pl.col(c).cast(pl.String) for c in frame.columns if c.startswith("param:"))
        csv_frame.write_csv(run_dir / "leaderboard.csv")
    (run_dir / "leaderboard.json").write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    return frame


def completed(study: optuna.Study) -> list[FrozenTrial]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in trials if t.values and math.isfinite(t.values[0])]


def select_winner(study: optuna.Study, rule: str = "best", tolerance: float = 0.01) -> FrozenTrial:
    """Choose the winning trial.

    ``best`` takes the highest validation NDCG. ``smallest-within`` takes the trial
    with the fewest serving bytes among those whose NDCG is within ``tolerance``
    (relative) of the best. Ties go to the earlier trial.
    """
    if rule not in SELECT_RULES:
        raise RecsearchError(f"invalid selection rule {rule!r}; expected one of {', '.join(SELECT_RULES)}")
    trials = completed(study)
    if not trials:
        raise NoCompletedTrialError(
            f"study {study.study_name!r} has no completed trial yet; run more trials (--trials) or a longer --timeout"
        )
    best = max(trials, key=lambda t: (t.values[0], -t.number))
    if rule == "best":
        return best
    floor = best.values[0] * (1.0 - tolerance)
    near = [t for t in trials if t.values[0] >= floor]
    return min(near, key=lambda t: (_size(t), -t.values[0], t.number))


@dataclass(frozen=True)
class ParetoPoint:
    number: int
    ndcg: float
    size: float


def pareto_front(study: optuna.Study) -> list[ParetoPoint]:
    """Return the completed trials that no other trial beats on both quality and size."""
    points = [ParetoPoint(t.number, t.values[0], _size(t)) for t in completed(study)]
    front = [
        p for p in points
        if not any(q.ndcg >= p.ndcg and q.size <= p.size and (q.ndcg > p.ndcg or q.size < p.size) for q in points)
    ]
    return sorted(front, key=lambda p: p.size)


def _size(trial: FrozenTrial) -> float:
    """Return the size objective of a two-objective trial (parameters or bytes), else its serving bytes."""
    if trial.values is not None and len(trial.values) > 1:
        return float(trial.values[1])
    return float(trial.user_attrs.get(SIZE_ATTRIBUTE, math.inf))
