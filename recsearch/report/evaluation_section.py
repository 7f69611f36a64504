"""The test part of the report: the winner against every baseline with bootstrap intervals,
segments, popularity bias and example users.

Every ranking comes from the shared evaluator (``recsearch.evaluate``); this module only
re-scores the saved models and aggregates the per-user values it returns.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsearch.data import Dataset
from recsearch.data.layout import FEATURE_INDEX, FEATURE_VALUE, DatasetPaths
from recsearch.evaluate import (
    DEFAULT_KS,
    METRIC_NAMES,
    RankingResult,
    evaluate_split,
    evaluation_split,
    head_items,
    metrics_by_history_length,
    metrics_by_item_group,
    run_baselines,
)
from recsearch.evaluate.protocol import EvaluationSplit
from recsearch.report.bootstrap import bootstrap_means, percentile_interval
from recsearch.report.schema import Comparison, ExampleUser, Figure, MetricEstimate, ModelResult, Segments, Series
from recsearch.train import TwoTowerScorer, UserHistory, load_trained_model

logger = logging.getLogger(__name__)

REPORT_KS = (5, 10, 20)
# Models are ranked to the largest cut-off of the search's own test evaluation too:
# torch.topk orders tied scores differently for different k, so ranking to another
# depth can move tied items (MostPopular has many) and change the metrics at 10.
RANKING_KS = tuple(sorted({*REPORT_KS, *DEFAULT_KS}))
HEADLINE_METRIC = "ndcg@10"
SEGMENT_K = 10
WINNER = "winner"
REFIT = "refit"
N_EXAMPLE_USERS = 5
N_RECENT_ITEMS = 5
N_POPULARITY_BINS = 10
_TITLE_FEATURES = ("title", "name")  # item features shown before the others in example labels
_METRIC_LABELS = {"recall": "Recall", "ndcg": "NDCG", "hit_rate": "HitRate", "mrr": "MRR", "map": "MAP"}


@dataclass(frozen=True)
class RankedModel:
    name: str
    description: str
    ranking: RankingResult


def metric_label(metric: str) -> str:
    """Return the display name of "ndcg@10" and the like: "NDCG@10"."""
    name, _, k = metric.partition("@")
    label = _METRIC_LABELS.get(name, name.replace("_", " "))
    return f"{label}@{k}" if k else label


def _run_metrics(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))


def rank_saved_model(model_dir: Path, dataset: Dataset, ks: tuple[int, ...]) -> RankingResult:
    """Load a saved network on the data view it was trained on and rank the test split."""
    splits = _run_metrics(model_dir).get("dataset", {}).get("training_splits", ["train"])
    view = dataset.training_view(list(splits))
    network = load_trained_model(model_dir, view)
    history = None
    if network.uses_history:
        history, _ = UserHistory.from_tables(view.n_users, view.train, view.validation)
    return evaluate_split(TwoTowerScorer(network, history), evaluation_split(view, "test"), ks=ks)


def rank_models(run_dir: Path, dataset: Dataset, ks: tuple[int, ...] = RANKING_KS) -> list[RankedModel]:
    """Rank the test split with the winner, its refit when present and every baseline that can run."""
    models = [RankedModel(
        WINNER, "winning trial's model, trained on train", rank_saved_model(run_dir / "winner", dataset, ks)
    )]
    refit_dir = run_dir / "refit"
    if (refit_dir / "model.pt").is_file():
        epochs = _run_metrics(refit_dir).get("n_epochs")
        models.append(RankedModel(
            REFIT, f"winning configuration retrained on train + validation ({epochs} epochs)",
            rank_saved_model(refit_dir, dataset, ks),
        ))
    for name, result in run_baselines(dataset, split="test", ks=ks).items():
        params = ", ".join(f"{key} {value:g}" for key, value in result.params.items())
        description = "baseline fitted on train" + (f" ({params})" if params else "")
        assert result.ranking is not None
        models.append(RankedModel(name, description, result.ranking))

    for model in models[1:]:
        # Paired intervals need every model ranked for the same users in the same order.
        assert np.array_equal(model.ranking.users, models[0].ranking.users), model.name
    return models


def compare_models(
    models: list[RankedModel], *, n_resamples: int, confidence: float, seed: int, protocol: dict[str, Any]
) -> tuple[Comparison, list[Figure]]:
    """Estimate every metric of every model with a paired bootstrap over users, and judge the winner."""
    first = models[0].ranking
    ks = [k for k in first.ks if k in REPORT_KS]
    metrics = [f"{name}@{k}" for name in METRIC_NAMES for k in ks]
    values = np.column_stack([m.ranking.per_user[metric] for m in models for metric in metrics])  # (U, models * metrics)
    resampled = bootstrap_means(values, n_resamples=n_resamples, seed=seed)  # (R, models * metrics)
    column = {(m.name, metric): i for i, (m, metric) in enumerate((m, x) for m in models for x in metrics)}

    results = []
    for model in models:
        summary = model.ranking.summary()
        estimates = {
            metric: percentile_interval(summary[metric], resampled[:, column[(model.name, metric)]], confidence)
            for metric in metrics
        }
        coverage = {f"coverage@{k}": summary[f"coverage@{k}"] for k in ks}
        results.append(ModelResult(model.name, model.description, estimates, coverage))

    baselines = [r for r in results if r.name not in (WINNER, REFIT)]
    best = max(baselines, key=lambda r: r.metrics[HEADLINE_METRIC].mean) if baselines else None
    difference = significant = None
    if best is not None:
        winner_column = resampled[:, column[(WINNER, HEADLINE_METRIC)]]
        best_column = resampled[:, column[(best.name, HEADLINE_METRIC)]]
        point = results[0].metrics[HEADLINE_METRIC].mean - best.metrics[HEADLINE_METRIC].mean
        difference = percentile_interval(point, winner_column - best_column, confidence)
        significant = difference.lower > 0.0 or difference.upper < 0.0

    comparison = Comparison(
        split="test",
        ks=ks,
        n_users=int(first.users.shape[0]),
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
        headline_metric=HEADLINE_METRIC,
        models=results,
        best_baseline=None if best is None else best.name,
        difference=difference,
        significant=significant,
        verdict=verdict(results[0], best, difference, confidence, int(first.users.shape[0])),
        protocol=protocol,
    )
    return comparison, comparison_figures(comparison)


def verdict(
    winner: ModelResult, best: ModelResult | None, difference: MetricEstimate | None, confidence: float, n_users: int
) -> str:
    """Return one plain sentence on whether the winner beats the best baseline significantly."""
    label = metric_label(HEADLINE_METRIC)
    if best is None or difference is None:
        return f"No baseline was scored on the test split, so the winner's {label} has nothing to be compared with."
    ours, theirs = winner.metrics[HEADLINE_METRIC].mean, best.metrics[HEADLINE_METRIC].mean
    interval = f"{difference.mean:+.3f} ({confidence:.0%} CI {difference.lower:+.3f} to {difference.upper:+.3f}, {n_users:,} test users)"
    if difference.lower > 0.0:
        return (
            f"The winner beats the best baseline, {best.name}, significantly: test {label} "
            f"{ours:.3f} against {theirs:.3f}, a difference of {interval}."
        )
    if difference.upper < 0.0:
        return (
            f"The winner does not beat the best baseline: {best.name} is significantly better, with test {label} "
            f"{theirs:.3f} against the winner's {ours:.3f}, a difference of {interval}."
        )
    return (
        f"The winner and the best baseline, {best.name}, are not significantly different: test {label} "
        f"{ours:.3f} against {theirs:.3f}, a difference of {interval}."
    )


def comparison_figures(comparison: Comparison) -> list[Figure]:
    k = SEGMENT_K if SEGMENT_K in comparison.ks else comparison.ks[0]
    metrics = [f"{name}@{k}" for name in METRIC_NAMES]
    by_metric = [
        Series(
            model.name,
            [metric_label(m) for m in metrics],
            [model.metrics[m].mean for m in metrics],
            mode="bar",
            lower=[model.metrics[m].lower for m in metrics],
            upper=[model.metrics[m].upper for m in metrics],
        )
        for model in comparison.models
    ]
    headline = comparison.headline_metric.partition("@")[0]
    over_k = [
        Series(
            model.name,
            comparison.ks,
            [model.metrics[f"{headline}@{kk}"].mean for kk in comparison.ks],
            mode="lines+markers",
            lower=[model.metrics[f"{headline}@{kk}"].lower for kk in comparison.ks],
            upper=[model.metrics[f"{headline}@{kk}"].upper for kk in comparison.ks],
        )
        for model in comparison.models
    ]
    interval = f"Error bars: {comparison.confidence:.0%} bootstrap intervals over {comparison.n_users:,} test users."
    return [
        Figure(
            id="test-metrics", section="comparison", title=f"Test metrics at {k}, winner against baselines",
            kind="bar", x_label="metric", y_label=f"mean over test users (0 to 1)", series=by_metric, note=interval,
        ),
        Figure(
            id="test-ndcg-by-k", section="comparison", title=f"{metric_label(headline)} at each cut-off",
            kind="line", x_label="cut-off k (items recommended)", y_label=f"{metric_label(headline)}@k (0 to 1)",
            series=over_k, note=interval, x_ticks=list(comparison.ks),
        ),
    ]


def collect_segments(
    models: list[RankedModel], dataset: Dataset, best_baseline: str | None
) -> tuple[Segments, list[Figure]]:
    """Break the winner's and the baselines' test quality down by user history and item popularity."""
    test = evaluation_split(dataset, "test")
    popularity = np.bincount(dataset.train.item, minlength=dataset.n_items)  # (n_items,) training interactions
    is_head = head_items(popularity)
    head_share = float(is_head.mean())

    by_history, by_group, bias = {}, {}, {}
    for model in models:
        by_history[model.name] = metrics_by_history_length(model.ranking, test.known)
        by_group[model.name] = metrics_by_item_group(model.ranking, test.target, is_head)
        bias[model.name] = popularity_bias(model.ranking.top_items[:, :SEGMENT_K], popularity, is_head)
    bias["test items"] = target_popularity(test, models[0].ranking.users, popularity, is_head)

    segments = Segments(
        k=SEGMENT_K, head_share=head_share, by_history_length=by_history, by_item_group=by_group, popularity=bias
    )
    shown = [m.name for m in models if m.name in (WINNER, best_baseline)]
    return segments, segment_figures(segments, shown, models, popularity, test)


def popularity_bias(top_items: np.ndarray, popularity: np.ndarray, is_head: np.ndarray) -> dict[str, float]:
    """Return how popular a model's recommended items (U, k) are, by training interactions."""
    slots = top_items[top_items >= 0]
    if slots.size == 0:
        return {"mean_item_popularity": 0.0, "head_share": 0.0, "gini": 0.0}
    counts = np.bincount(slots, minlength=popularity.shape[0])
    return {
        "mean_item_popularity": float(popularity[slots].mean()),
        "head_share": float(is_head[slots].mean()),
        "gini": gini(counts),
    }


def target_popularity(test: EvaluationSplit, users: np.ndarray, popularity: np.ndarray, is_head: np.ndarray) -> dict[str, float]:
    """Return the same popularity figures for the held-out test items, the reference a model should match."""
    items = np.concatenate([test.target.row(int(u)) for u in users]) if users.size else np.zeros(0, dtype=np.int64)
    return popularity_bias(items.reshape(1, -1).astype(np.int64), popularity, is_head)


def gini(counts: np.ndarray) -> float:
    """Return the Gini index of how often each item is recommended: 0 even, near 1 a few items only."""
    total = counts.sum()
    if total == 0:
        return 0.0
    ordered = np.sort(counts).astype(np.float64)
    n = ordered.shape[0]
    ranks = np.arange(1, n + 1)
    return float((2.0 * (ranks * ordered).sum()) / (n * total) - (n + 1) / n)


def popularity_bins(items: np.ndarray, popularity: np.ndarray, n_bins: int = N_POPULARITY_BINS) -> np.ndarray:
    """Return the share of ``items`` that falls in each popularity decile, most popular decile first."""
    rank = np.empty(popularity.shape[0], dtype=np.int64)
    rank[np.argsort(-popularity, kind="stable")] = np.arange(popularity.shape[0])
    bins = rank[items] * n_bins // max(popularity.shape[0], 1)
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def segment_figures(
    segments: Segments, shown: list[str], models: list[RankedModel], popularity: np.ndarray, test: EvaluationSplit
) -> list[Figure]:
    metric = f"ndcg@{segments.k}"
    groups = list(segments.by_history_length[shown[0]])
    history = [
        Series(
            name,
            groups,
            [segments.by_history_length[name][g][metric] for g in groups],
            mode="bar",
            labels=[f"{int(segments.by_history_length[name][g]['n_users'])} users" for g in groups],
        )
        for name in shown
    ]
    recall = f"recall@{segments.k}"
    item_groups = [
        Series(name, ["head items", "tail items"],
               [segments.by_item_group[name]["head"][recall], segments.by_item_group[name]["tail"][recall]], mode="bar")
        for name in shown
    ]

    deciles = [f"{10 * i + 1}-{10 * (i + 1)}%" for i in range(N_POPULARITY_BINS)]
    users = models[0].ranking.users
    held_out = np.concatenate([test.target.row(int(u)) for u in users]).astype(np.int64)
    bias = [Series("test items (what users chose)", deciles, popularity_bins(held_out, popularity).tolist(), mode="bar")]
    for model in models:
        if model.name in shown:
            top = model.ranking.top_items[:, : segments.k]
            bias.append(Series(model.name, deciles, popularity_bins(top[top >= 0], popularity).tolist(), mode="bar"))

    return [
        Figure(
            id="segments-history", section="segments", title=f"{metric_label(metric)} by user history length",
            kind="bar", x_label="known items per user (train + validation)", y_label=f"{metric_label(metric)} (0 to 1)",
            series=history,
        ),
        Figure(
            id="segments-items", section="segments", title=f"{metric_label(recall)} on head and tail items",
            kind="bar", x_label="item group", y_label=f"{metric_label(recall)} (0 to 1)", series=item_groups,
            note=f"Head: the {segments.head_share:.0%} of items with the most training interactions.",
        ),
        Figure(
            id="segments-popularity", section="segments", title="Popularity of what is recommended",
            kind="bar", x_label="item popularity band (most popular first, by training interactions)",
            y_label=f"share of top-{segments.k} slots or of test items (0 to 1)", series=bias,
            note="A model with no popularity bias puts its bars near the test items' bars.",
        ),
    ]


def item_labels(dataset: Dataset) -> list[str]:
    """Return one display label per item: its id, then its title or categories where the data has them."""
    paths = DatasetPaths(dataset.root)
    names = sorted(dataset.item_features, key=lambda n: n not in _TITLE_FEATURES)  # stable: manifest order otherwise
    decoded = []
    for name in names:
        path = paths.feature_vocabulary("item", name)
        if not path.is_file():
            continue
        vocabulary = pl.read_parquet(path, columns=[FEATURE_INDEX, FEATURE_VALUE])
        values = np.full(dataset.feature_cardinality.get(f"item.{name}", vocabulary.height), None, dtype=object)
        values[vocabulary[FEATURE_INDEX].to_numpy()] = vocabulary[FEATURE_VALUE].to_numpy()
        decoded.append((name, values[dataset.item_features[name]]))

    labels = []
    for item in range(dataset.n_items):
        parts = [f"{name} {values[item]}" for name, values in decoded if values[item] is not None]
        labels.append(" · ".join(parts))
    return labels


def example_users(
    dataset: Dataset, winner: RankingResult, n_users: int = N_EXAMPLE_USERS, k: int = SEGMENT_K
) -> list[ExampleUser]:
    """Pick users spread over history lengths and show their recent items, test items and recommendations."""
    test = evaluation_split(dataset, "test")
    known_tables = (dataset.train, dataset.validation)
    history, _ = UserHistory.from_tables(dataset.n_users, *known_tables)  # oldest first per user
    indptr = history.indptr.numpy()
    items = history.items.numpy()
    labels = item_labels(dataset)

    lengths = np.diff(test.known.indptr)[winner.users]
    by_length = np.argsort(lengths, kind="stable")
    quantiles = np.linspace(0.1, 0.9, n_users) if n_users > 1 else np.array([0.5])
    positions = sorted({int(by_length[int(q * (len(by_length) - 1))]) for q in quantiles}) if len(by_length) else []

    examples = []
    for position in positions:
        user = int(winner.users[position])
        recent = items[indptr[user] : indptr[user + 1]][::-1][:N_RECENT_ITEMS]
        held_out = set(test.target.row(user).tolist())
        top = [int(i) for i in winner.top_items[position, :k] if i >= 0]
        examples.append(ExampleUser(
            user_id=str(dataset.user_ids[user]),
            n_known=int(indptr[user + 1] - indptr[user]),
            recent=[_item(dataset, labels, int(i)) for i in recent],
            held_out=[_item(dataset, labels, i) for i in sorted(held_out)],
            recommended=[{"rank": r, **_item(dataset, labels, i), "hit": i in held_out} for r, i in enumerate(top, 1)],
        ))
    return examples


def _item(dataset: Dataset, labels: list[str], item: int) -> dict[str, Any]:
    return {"id": str(dataset.item_ids[item]), "label": labels[item]}
