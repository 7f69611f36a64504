"""The search part of the report: trial counts and times, optimisation history, parameter
importances, quality against model size, and the leaderboard, all read from the Optuna study."""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import FrozenTrial, TrialState

from recsearch.errors import InputError
from recsearch.report.schema import Figure, Leaderboard, SearchSection, Series, Table

logger = logging.getLogger(__name__)

SECTION = "search"
OBJECTIVE_LABEL = "validation NDCG@10"
LEADERBOARD_SIZE = 10
# PED-ANOVA needs a few trials in its top quantile; below this count the importances
# are reported as rough.
RELIABLE_IMPORTANCE_TRIALS = 20
_MIN_IMPORTANCE_TRIALS = 3
_N_IMPORTANCES_SHOWN = 12
_LEADERBOARD_METRICS = ("val_recall@10", "val_hit_rate@10", "val_mrr@10", "val_map@10")
_BYTES_PER_MIB = 2**20


def read_search_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "search.json"
    if not path.is_file():
        raise InputError(
            f"{run_dir} is not a search run directory: search.json is missing; "
            "create one with `recsearch search DATA_DIR --out RUN_DIR`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_study(summary: dict[str, Any], storage: str | None) -> optuna.Study:
    """Open the run's study read-only in intent: nothing is written to it."""
    url = storage or summary.get("storage")
    if not url:
        raise InputError("search.json names no study storage; pass the storage URL with --storage")
    if "***" in url:
        raise InputError(
            f"the study storage {url} has a masked password; pass the full URL with --storage"
        )
    try:
        return optuna.load_study(study_name=summary.get("study_name", "recsearch"), storage=url)
    except KeyError as exc:
        raise InputError(f"study {summary.get('study_name')!r} not found in {url}; check --storage") from exc


def objective_value(trial: FrozenTrial) -> float | None:
    return float(trial.values[0]) if trial.values else None


def completed_trials(study: optuna.Study) -> list[FrozenTrial]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in trials if t.values and math.isfinite(t.values[0])]


def collect_search(
    study: optuna.Study, summary: dict[str, Any]
) -> tuple[SearchSection, Leaderboard, list[Figure]]:
    trials = study.get_trials(deepcopy=False)
    complete = completed_trials(study)
    counts = {state.name.lower(): 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)}
    for trial in trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1

    winner = summary.get("winner", {})
    winner_number = int(winner.get("number", summary.get("winner_number", -1)))
    importances, note = parameter_importances(study, complete)
    front = pareto_points(complete)

    section = SearchSection(
        study_name=study.study_name,
        storage=str(summary.get("storage", "")),
        objectives=list(summary.get("objectives", ["ndcg"])),
        sampler=summary.get("sampler"),
        pruner=summary.get("pruner"),
        counts=counts,
        wall_seconds=summary.get("seconds"),
        trial_seconds=sum(t.duration.total_seconds() for t in trials if t.duration is not None),
        winner_number=winner_number,
        winner_value=float(summary.get("winner_value", winner.get("values", [math.nan])[0])),
        winner_params=dict(winner.get("params", {})),
        winner_n_parameters=winner.get("n_parameters"),
        winner_serving_bytes=winner.get("serving_bytes"),
        importances=importances,
        importance_method="PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator) on validation NDCG@10",
        importance_note=note,
        pareto=front,
    )
    figures = [history_figure(trials, winner_number)]
    if importances:
        figures.append(importance_figure(importances, note))
    size_figure = quality_size_figure(complete, front, winner_number)
    if size_figure is not None:
        figures.append(size_figure)
    embedding = embedding_figure(complete)
    if embedding is not None:
        figures.append(embedding)
    return section, leaderboard(complete), figures


def parameter_importances(study: optuna.Study, complete: list[FrozenTrial]) -> tuple[dict[str, float], str]:
    """Return each parameter's importance for validation NDCG@10, and a note on how far to trust it."""
    if len(complete) < _MIN_IMPORTANCE_TRIALS:
        return {}, f"not computed: {len(complete)} completed trials, at least {_MIN_IMPORTANCE_TRIALS} needed"
    with warnings.catch_warnings():
        # PED-ANOVA warns for every parameter value seen in fewer than two trials,
        # which is the rule in a short search. The returned note states it once.
        warnings.simplefilter("ignore", UserWarning)
        try:
            # PED-ANOVA explains what makes the target low, so the NDCG is negated.
            values = get_param_importances(
                study, evaluator=PedAnovaImportanceEvaluator(), target=lambda t: -t.values[0]
            )
        except (RuntimeError, ValueError) as exc:
            logger.warning("parameter importances not computed: %s", exc)
            return {}, f"not computed: {exc}"
    note = f"from {len(complete)} completed trials"
    if len(complete) < RELIABLE_IMPORTANCE_TRIALS:
        note += f"; with fewer than {RELIABLE_IMPORTANCE_TRIALS} trials treat them as a rough guide"
    return {name: float(value) for name, value in values.items()}, note


def pareto_points(complete: list[FrozenTrial]) -> list[dict[str, Any]]:
    """Return the completed trials that no other trial beats on both NDCG and serving bytes, smallest first."""
    points = [
        (t.number, float(t.values[0]), float(t.user_attrs["serving_bytes"]))
        for t in complete if t.user_attrs.get("serving_bytes") is not None
    ]
    front = [
        p for p in points
        if not any(q[1] >= p[1] and q[2] <= p[2] and (q[1] > p[1] or q[2] < p[2]) for q in points)
    ]
    return [{"number": n, "ndcg": v, "serving_bytes": int(b)} for n, v, b in sorted(front, key=lambda p: p[2])]


def history_figure(trials: list[FrozenTrial], winner_number: int) -> Figure:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    best_x, best_y, best = [], [], -math.inf
    for trial in sorted(complete, key=lambda t: t.number):
        best = max(best, trial.values[0])
        best_x.append(trial.number)
        best_y.append(best)
    series = [
        Series("completed trial", [t.number for t in complete], [t.values[0] for t in complete],
               labels=[_trial_label(t) for t in complete]),
        Series("best so far", best_x, best_y, mode="lines"),
    ]
    if pruned:
        series.insert(1, Series(
            "pruned trial (last reported value)",
            [t.number for t in pruned],
            [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
            labels=[f"trial {t.number}, pruned after epoch {max(t.intermediate_values)}" for t in pruned],
        ))
    return Figure(
        id="search-history", section=SECTION, title="Optimisation history", kind="scatter",
        x_label="trial number", y_label=OBJECTIVE_LABEL, series=series,
        note=f"The winner is trial {winner_number}.",
    )


def _trial_label(trial: FrozenTrial) -> str:
    parts = [f"trial {trial.number}"]
    if trial.user_attrs.get("serving_bytes") is not None:
        parts.append(f"{trial.user_attrs['serving_bytes'] / _BYTES_PER_MIB:.2f} MiB")
    if "model.embedding_dim" in trial.params:
        parts.append(f"dim {trial.params['model.embedding_dim']}")
    return ", ".join(parts)


def importance_figure(importances: dict[str, float], note: str) -> Figure:
    top = list(importances.items())[:_N_IMPORTANCES_SHOWN][::-1]  # largest drawn at the top
    return Figure(
        id="search-importances", section=SECTION, title="Parameter importances", kind="bar",
        x_label="importance (share of the total, sums to 1)", y_label="parameter",
        series=[Series("importance", [value for _, value in top], [name for name, _ in top], mode="bar")],
        horizontal=True, note=note.capitalize() + ".",
    )


def quality_size_figure(complete: list[FrozenTrial], front: list[dict[str, Any]], winner_number: int) -> Figure | None:
    sized = [t for t in complete if t.user_attrs.get("serving_bytes") is not None]
    if not sized:
        return None
    series = [
        Series("completed trial", [t.user_attrs["serving_bytes"] / _BYTES_PER_MIB for t in sized],
               [t.values[0] for t in sized], labels=[_trial_label(t) for t in sized]),
        Series("Pareto front", [p["serving_bytes"] / _BYTES_PER_MIB for p in front], [p["ndcg"] for p in front],
               mode="lines+markers", labels=[f"trial {p['number']}" for p in front]),
    ]
    winner = [t for t in sized if t.number == winner_number]
    if winner:
        series.append(Series("winner", [winner[0].user_attrs["serving_bytes"] / _BYTES_PER_MIB],
                             [winner[0].values[0]], labels=[f"trial {winner_number}"]))
    return Figure(
        id="search-pareto", section=SECTION, title="Quality against model size", kind="scatter",
        x_label="serving size (MiB, float32 embeddings and weights)", y_label=OBJECTIVE_LABEL,
        series=series, x_log=True,
        note="The Pareto front joins the trials that no other trial beats on both quality and size.",
    )


def embedding_figure(complete: list[FrozenTrial]) -> Figure | None:
    with_dim = [t for t in complete if "model.embedding_dim" in t.params]
    if not with_dim:
        return None
    dims = sorted({t.params["model.embedding_dim"] for t in with_dim})
    return Figure(
        id="search-embedding-dim", section=SECTION, title="Embedding size against quality", kind="scatter",
        x_label="embedding size (dimensions of the user and item vectors)", y_label=OBJECTIVE_LABEL,
        series=[Series("completed trial", [t.params["model.embedding_dim"] for t in with_dim],
                       [t.values[0] for t in with_dim], labels=[_trial_label(t) for t in with_dim])],
        x_log=True, x_ticks=dims,
    )


def leaderboard(complete: list[FrozenTrial], size: int = LEADERBOARD_SIZE) -> Leaderboard:
    """Return the ``size`` best completed trials with metrics, sizes and the parameters that differ."""
    top = sorted(complete, key=lambda t: (-t.values[0], t.number))[:size]
    names = sorted({name for t in top for name in t.params})
    varying = [n for n in names if len({json.dumps(t.params.get(n), default=str) for t in top}) > 1]
    shared = {n: top[0].params.get(n) for n in names if n not in varying} if top else {}

    columns = ["rank", "trial", "val_ndcg@10", *_LEADERBOARD_METRICS, "parameters", "serving MiB", "epochs", "train s", *varying]
    rows = []
    for rank, trial in enumerate(top, start=1):
        validation = trial.user_attrs.get("validation") or {}
        serving = trial.user_attrs.get("serving_bytes")
        rows.append([
            rank,
            trial.number,
            trial.values[0],
            *[validation.get(name.removeprefix("val_")) for name in _LEADERBOARD_METRICS],
            trial.user_attrs.get("n_parameters"),
            None if serving is None else serving / _BYTES_PER_MIB,
            trial.user_attrs.get("epochs_run"),
            trial.user_attrs.get("train_seconds"),
            *[trial.params.get(name) for name in varying],
        ])
    return Leaderboard(metric="val_ndcg@10", table=Table(columns=columns, rows=rows), shared_params=shared)
