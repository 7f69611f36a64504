"""Evaluation shared by training, search, the report and the benchmarks.

Full-ranking metrics over the whole catalogue (``evaluate_ranking``), baselines fitted
and scored by the same code, per-segment breakdowns and, only when asked for by name,
the sampled-negative protocol of older papers.
"""

from recsearch.evaluate.baselines import EASE, ImplicitALS, ItemKNN, MostPopular, Recommender
from recsearch.evaluate.metrics import (
    METRIC_NAMES,
    catalogue_coverage,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from recsearch.evaluate.protocol import (
    BASELINE_NAMES,
    BaselineResult,
    EvaluationSplit,
    baselines_not_beaten,
    evaluate_split,
    evaluation_split,
    run_baselines,
    scorer_of,
)
from recsearch.evaluate.ranking import (
    DEFAULT_KS,
    RankingResult,
    Scorer,
    evaluate_ranking,
    top_k_items,
    user_items_of,
)
from recsearch.evaluate.sampled import NCF_NEGATIVES, evaluate_sampled_negatives
from recsearch.evaluate.segments import head_items, metrics_by_history_length, metrics_by_item_group

__all__ = [
    "BASELINE_NAMES",
    "DEFAULT_KS",
    "EASE",
    "METRIC_NAMES",
    "NCF_NEGATIVES",
    "BaselineResult",
    "EvaluationSplit",
    "ImplicitALS",
    "ItemKNN",
    "MostPopular",
    "RankingResult",
    "Recommender",
    "Scorer",
    "baselines_not_beaten",
    "catalogue_coverage",
    "evaluate_ranking",
    "evaluate_sampled_negatives",
    "evaluate_split",
    "evaluation_split",
    "head_items",
    "hit_rate_at_k",
    "map_at_k",
    "metrics_by_history_length",
    "metrics_by_item_group",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "run_baselines",
    "scorer_of",
    "top_k_items",
    "user_items_of",
]
