"""Architecture search over two-tower configurations with Optuna."""

from recsearch.search.leaderboard import SELECT_RULES, pareto_front, select_winner, write_leaderboard
from recsearch.search.runner import OBJECTIVES, SearchConfig, SearchResult, build_space, run_search
from recsearch.search.space import Param, SearchSpace, default_space, load_space, space_from_json
from recsearch.search.suggest import build_config, suggest_config

__all__ = [
    "OBJECTIVES",
    "SELECT_RULES",
    "Param",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "build_config",
    "build_space",
    "default_space",
    "load_space",
    "pareto_front",
    "run_search",
    "select_winner",
    "space_from_json",
    "suggest_config",
    "write_leaderboard",
]
