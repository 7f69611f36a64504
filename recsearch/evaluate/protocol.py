"""The evaluation protocol on a loaded dataset: which items are targets, which are excluded, and baselines.

Ranking the validation split, a model reads and excludes each user's training items.
Ranking the test split, it reads and excludes training plus validation items, so every
method (baselines included) gets the same known items.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recsearch.data.load import CsrMatrix, Dataset
from recsearch.errors import InputError
from recsearch.evaluate.baselines import EASE, ImplicitALS, ItemKNN, MostPopular, Recommender
from recsearch.evaluate.ranking import DEFAULT_KS, RankingResult, Scorer, evaluate_ranking, user_items_of

logger = logging.getLogger(__name__)

EVALUATION_SPLITS = ("validation", "test")
BASELINE_NAMES = ("most_popular", "item_knn", "ease", "ials")
EASE_L2_GRID = (10.0, 50.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)  # tried on validation, best kept


@dataclass(frozen=True)
class EvaluationSplit:
    """The matrices needed to rank one split."""

    name: str
    target: CsrMatrix  # relevant items per user
    known: CsrMatrix  # items each user had before: model input and excluded from the ranking


def evaluation_split(dataset: Dataset, name: str) -> EvaluationSplit:
    """Return the target and known items for ranking ``name`` ("validation" or "test")."""
    if name not in EVALUATION_SPLITS:
        raise InputError(f"cannot evaluate on split {name!r}; expected one of {', '.join(EVALUATION_SPLITS)}")
    n_users, n_items = dataset.n_users, dataset.n_items
    known_tables = (dataset.train,) if name == "validation" else (dataset.train, dataset.validation)
    return EvaluationSplit(
        name=name,
        target=dataset.split(name).user_items(n_users, n_items),
        known=user_items_of(n_users, n_items, *known_tables),
    )


def evaluate_split(scorer: Scorer, split: EvaluationSplit, *, ks: Sequence[int] = DEFAULT_KS) -> RankingResult:
    """Rank ``split`` with the shared evaluator, excluding the known items."""
    return evaluate_ranking(scorer, target=split.target, exclude=split.known, ks=ks)


def scorer_of(recommender: Recommender, known: CsrMatrix) -> Scorer:
    """Return a scorer that feeds each user's ``known`` row to a fitted baseline."""
    return lambda users: recommender.score_users(users, known)


@dataclass(frozen=True)
class BaselineResult:
    """One baseline's metrics on one split."""

    name: str
    metrics: dict[str, float]
    fit_seconds: float
    params: dict[str, float] = field(default_factory=dict)
    ranking: RankingResult | None = None


def _tune_ease(model: EASE, train: CsrMatrix, validation: EvaluationSplit, grid: Sequence[float]) -> float:
    best_l2, best_ndcg = grid[0], -1.0
    for l2 in grid:
        model.set_l2(l2)
        ndcg = evaluate_split(scorer_of(model, train), validation, ks=(10,)).summary()["ndcg@10"]
        logger.debug("EASE l2=%g: validation ndcg@10 %.4f", l2, ndcg)
        if ndcg > best_ndcg:
            best_l2, best_ndcg = l2, ndcg
    model.set_l2(best_l2)
    return best_l2


def run_baselines(
    dataset: Dataset,
    *,
    split: str = "test",
    ks: Sequence[int] = DEFAULT_KS,
    names: Sequence[str] = BASELINE_NAMES,
    ease_l2_grid: Sequence[float] = EASE_L2_GRID,
    seed: int = 0,
) -> dict[str, BaselineResult]:
    """Fit each named baseline on the training split and rank ``split`` with the shared evaluator.

    EASE's regularisation is chosen on the validation split. A baseline that cannot
    run here (iALS without the ``implicit`` package, EASE on a catalogue too large for
    a dense matrix) is skipped with a logged reason.
    """
    unknown = sorted(set(names) - set(BASELINE_NAMES))
    if unknown:
        raise InputError(f"unknown baselines {', '.join(unknown)}; expected some of {', '.join(BASELINE_NAMES)}")
    train = dataset.train.user_items(dataset.n_users, dataset.n_items)
    validation = evaluation_split(dataset, "validation")
    target = evaluation_split(dataset, split)

    results = {}
    for name in names:
        started = time.perf_counter()
        params: dict[str, float] = {}
        if name == "most_popular":
            model: Recommender = MostPopular().fit(train)
        elif name == "item_knn":
            model = ItemKNN().fit(train)
            params["n_neighbours"] = model.n_neighbours
        elif name == "ease":
            if dataset.n_items > EASE().max_items:
                logger.warning("skipping EASE: %d items exceed its dense-matrix limit", dataset.n_items)
                continue
            model = EASE().fit(train)
            params["l2"] = _tune_ease(model, train, validation, ease_l2_grid)
        else:
            if not ImplicitALS.is_available():
                logger.warning("skipping iALS: the 'implicit' package is not installed (pip install 'recsearch[baselines]')")
                continue
            model = ImplicitALS(seed=seed).fit(train)
            params["factors"] = model.factors
        fit_seconds = time.perf_counter() - started

        ranking = evaluate_split(scorer_of(model, target.known), target, ks=ks)
        results[name] = BaselineResult(name, ranking.summary(), fit_seconds, params, ranking)
        logger.info("%s on %s: ndcg@10 %.4f (fit %.1f s)", name, split, results[name].metrics.get("ndcg@10", np.nan), fit_seconds)
    return results


def baselines_not_beaten(
    model_metrics: dict[str, float], baselines: dict[str, BaselineResult], *, metric: str = "ndcg@10"
) -> list[str]:
    """Return the baselines whose ``metric`` is at least the model's, and log a warning for each."""
    if metric not in model_metrics:
        raise InputError(f"metric {metric!r} is not among the model's metrics: {', '.join(sorted(model_metrics))}")
    not_beaten = [name for name, result in baselines.items() if result.metrics[metric] >= model_metrics[metric]]
    for name in not_beaten:
        logger.warning(
            "the model does not beat the %s baseline: %s %.4f vs %.4f",
            name, metric, model_metrics[metric], baselines[name].metrics[metric],
        )
    return not_beaten
