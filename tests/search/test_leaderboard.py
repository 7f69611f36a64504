from __future__ import annotations

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from recsearch.search import pareto_front, select_winner
from recsearch.search.leaderboard import NoCompletedTrialError


def _study(points: list[tuple[float, int]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for index, (ndcg, size) in enumerate(points):
        study.add_trial(
            create_trial(
                value=ndcg,
                params={"x": index},
                distributions={"x": IntDistribution(0, 100)},
                user_attrs={"serving_bytes": size, "config": {}},
            )
        )
    return study


def test_best_rule_takes_highest_ndcg():
    study = _study([(0.30, 100), (0.35, 900), (0.349, 50)])
    assert select_winner(study, "best").number == 1


def test_smallest_within_tolerance():
    study = _study([(0.30, 100), (0.35, 900), (0.349, 50), (0.34, 10)])
    assert select_winner(study, "smallest-within", 0.01).number == 2  # 0.34 is 2.9% below the best
    assert select_winner(study, "smallest-within", 0.05).number == 3


def test_no_completed_trial():
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(state=TrialState.PRUNED, params={}, distributions={}))
    with pytest.raises(NoCompletedTrialError, match="no completed trial"):
        select_winner(study)


def test_pareto_front_drops_dominated():
    study = _study([(0.30, 100), (0.35, 900), (0.29, 200), (0.34, 50)])
    front = pareto_front(study)
    assert [p.number for p in front] == [3, 1]


def _two_objective_study(points: list[tuple[float, int, int]]) -> optuna.Study:
    """Return a study of (ndcg, parameter count) trials whose serving bytes are given apart."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for index, (ndcg, n_parameters, size) in enumerate(points):
        study.add_trial(
            create_trial(
                values=[ndcg, n_parameters],
                params={"x": index},
                distributions={"x": IntDistribution(0, 100)},
                user_attrs={"serving_bytes": size, "config": {}},
            )
        )
    return study


def test_pareto_front_uses_the_size_objective():
    # With --objective ndcg,params the second objective is the parameter count, which can
    # order trials differently from their serving bytes.
    study = _two_objective_study([(0.30, 10, 900), (0.35, 500, 100), (0.29, 20, 50)])
    assert [(p.number, p.size) for p in pareto_front(study)] == [(0, 10.0), (1, 500.0)]


def test_smallest_within_uses_the_size_objective():
    # The winner of smallest-within must lie on the Pareto front printed beside it.
    study = _two_objective_study([(0.30, 500, 100), (0.31, 10, 900)])
    winner = select_winner(study, "smallest-within", 0.5)
    assert winner.number == 1
    assert winner.number in {p.number for p in pareto_front(study)}
