"""The search's pruners: Optuna's rules plus a floor relative to the best completed trial."""

import math

import optuna
import pytest

from recsearch.search.study import FLOOR_SHARE, make_pruner


def _study(pruner_name: str, *completed: dict[int, float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=make_pruner(pruner_name, max_epochs=10))
    for values in completed:
        study.add_trial(
            optuna.trial.create_trial(
                value=max(v for v in values.values() if not math.isnan(v)),
                intermediate_values=values,
                state=optuna.trial.TrialState.COMPLETE,
            )
        )
    return study


def _prunes(study: optuna.Study, reports: dict[int, float]) -> bool:
    trial = study.ask()
    for step, value in reports.items():
        trial.report(value, step)
    return trial.should_prune()


@pytest.mark.parametrize("pruner", ["hyperband", "median"])
def test_floor_prunes_far_below_best(pruner):
    study = _study(pruner, {0: 0.2, 1: 0.3})
    assert _prunes(study, {0: 0.2 * FLOOR_SHARE - 0.01})
    assert _prunes(study, {0: 0.2 * FLOOR_SHARE + 0.005, 1: 0.3 * FLOOR_SHARE - 0.005})


@pytest.mark.parametrize("pruner", ["hyperband", "median"])
def test_floor_keeps_trials_above_it(pruner):
    # One completed trial: neither Optuna rule prunes yet, so only the floor could.
    study = _study(pruner, {0: 0.2, 1: 0.3})
    assert not _prunes(study, {0: 0.2 * FLOOR_SHARE + 0.01})
    # At step 0 only the completed trial's step-0 value counts, not its later best.
    assert not _prunes(study, {0: 0.3 * FLOOR_SHARE - 0.01})


def test_floor_uses_best_reached_by_step():
    # A trial that stopped at step 1 still sets the floor for later steps.
    study = _study("median", {0: 0.1, 1: 0.2}, {0: 0.05, 1: 0.1, 2: 0.16})
    assert _prunes(study, {0: 0.01, 5: 0.2 * FLOOR_SHARE - 0.005})
    assert not _prunes(study, {0: 0.01, 5: 0.2 * FLOOR_SHARE + 0.005})


def test_floor_judges_trial_best_so_far():
    # The trial leads every completed trial, then has one bad epoch: the median rule keeps it.
    curve = {0: 0.1, 1: 0.2, 2: 0.3}
    study = _study("median", curve, curve, curve)
    assert not _prunes(study, {0: 0.35, 1: 0.4, 2: 0.01})


def test_floor_ignores_nan_and_empty_history():
    assert not _prunes(_study("median"), {0: 0.001})
    study = _study("median", {0: math.nan, 1: 0.2})
    assert not _prunes(study, {0: 0.001})
    assert _prunes(study, {0: 0.001, 1: 0.2 * FLOOR_SHARE - 0.01})
    # A trial that reported only NaN is left to Optuna's own rule.
    assert not _prunes(_study("median", {0: 0.2}), {0: math.nan})


def test_floor_skips_negative_scores():
    study = _study("median", {0: -0.4})
    assert not _prunes(study, {0: -0.3})
    assert not _prunes(study, {0: -5.0})


def test_floor_skips_minimised_studies():
    study = optuna.create_study(direction="minimize", pruner=make_pruner("median", max_epochs=10))
    study.add_trial(optuna.trial.create_trial(value=0.2, intermediate_values={0: 0.2}, state=optuna.trial.TrialState.COMPLETE))
    assert not _prunes(study, {0: 0.01})


def test_no_pruner_never_prunes():
    study = _study("none", {0: 0.2, 1: 0.3})
    assert not _prunes(study, {0: 0.0})


def test_hyperband_keeps_bracket_studies():
    # The sampler gets only the trials of the trial's Hyperband bracket, as with Optuna's own pruner.
    study = _study("hyperband", {0: 0.2})
    assert isinstance(study.pruner, optuna.pruners.HyperbandPruner)
    trial = study.ask()
    filtered = optuna.pruners._filter_study(study, study._storage.get_trial(trial._trial_id))
    assert filtered is not study
