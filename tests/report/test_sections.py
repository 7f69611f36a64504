"""Each section of a report built from a real search run, checked against the run's own files."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import polars as pl
import pytest
from optuna.trial import TrialState

from recsearch.data import load_dataset
from recsearch.evaluate import evaluation_split
from recsearch.report.evaluation_section import REPORT_KS, WINNER, gini

METRICS = ("recall", "ndcg", "hit_rate", "mrr", "map")


@pytest.fixture(scope="module")
def dataset(report):
    return load_dataset(report.data_dir)


@pytest.fixture(scope="module")
def study(search_summary):
    return optuna.load_study(study_name=search_summary["study_name"], storage=search_summary["storage"])


def test_schema_version_in_json(report):
    data = json.loads(report.to_json())
    assert data["schema"] == "recsearch.report"
    assert data["schema_version"] == 1


def test_data_counts_match_manifest(report, dataset):
    manifest = dataset.manifest
    assert report.data.n_users == manifest["n_users"]
    assert report.data.n_items == manifest["n_items"]
    assert report.data.n_interactions == manifest["n_interactions"]
    assert report.data.n_events == manifest["n_events"]
    assert report.data.density == pytest.approx(manifest["n_interactions"] / (manifest["n_users"] * manifest["n_items"]))
    assert report.data.time_range == manifest["time_range"]
    assert report.data.split["kind"] == manifest["split"]["kind"]


def test_data_split_counts_match_tables(report, dataset):
    counts = report.data.split["counts"]
    for name in ("train", "validation", "test"):
        assert counts[name] == len(dataset.split(name))


def test_data_losses_match_ingest_report(report, dataset):
    ingest = json.loads((dataset.root / "ingest_report.json").read_text(encoding="utf-8"))
    assert report.data.event_mix == ingest["event_mix"]
    rows = {(row[0], row[1]): row[2] for row in report.data.dropped.rows}
    assert rows[("events merged", "repeated (user, item) events summed into one interaction")] == ingest["events_merged"]
    dropped_later = ingest["dropped_split_events"]["after_user_holdout_time"]
    if dropped_later:
        assert dropped_later in [row[2] for row in report.data.dropped.rows if row[0] == "training pairs dropped"]


def test_data_figures_match_tables(report, dataset):
    n_pairs = len(dataset.train) + len(dataset.validation) + len(dataset.test)
    over_time = report.figure("data-over-time")
    assert sum(over_time.series[0].y) == n_pairs
    popularity = report.figure("data-item-popularity").series[0].y
    assert sum(popularity) == n_pairs
    assert popularity == sorted(popularity, reverse=True)
    assert sum(report.figure("data-user-history").series[0].y) == dataset.n_users
    events = report.figure("data-event-mix").series[0]
    assert dict(zip(events.x, events.y)) == report.data.event_mix


def test_search_counts_match_study(report, study):
    trials = study.get_trials(deepcopy=False)
    assert report.search.counts["complete"] == sum(t.state == TrialState.COMPLETE for t in trials)
    assert report.search.counts["pruned"] == sum(t.state == TrialState.PRUNED for t in trials)
    assert report.search.counts["fail"] == sum(t.state == TrialState.FAIL for t in trials)
    assert sum(report.search.counts.values()) == len(trials)
    assert report.search.trial_seconds == pytest.approx(sum(t.duration.total_seconds() for t in trials if t.duration))


def test_search_winner_matches_summary(report, search_summary):
    assert report.search.winner_number == search_summary["winner"]["number"]
    assert report.search.winner_value == pytest.approx(search_summary["winner_value"])
    assert report.search.winner_serving_bytes == search_summary["winner"]["serving_bytes"]
    assert report.search.wall_seconds == pytest.approx(search_summary["seconds"])


def test_pareto_front_matches_search(report, search_summary):
    assert [p["number"] for p in report.search.pareto] == [p["number"] for p in search_summary["pareto"]]
    front = report.figure("search-pareto").series[1]
    assert front.y == pytest.approx([p["ndcg"] for p in search_summary["pareto"]])


def test_history_figure_matches_trials(report, study):
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    points = report.figure("search-history").series[0]
    assert dict(zip(points.x, points.y)) == {t.number: t.values[0] for t in complete}
    best = report.figure("search-history").series[-1]
    assert best.y[-1] == pytest.approx(max(t.values[0] for t in complete))


def test_importances_cover_study_params(report, study):
    assert report.search.importances, report.search.importance_note
    params = {name for t in study.trials if t.state == TrialState.COMPLETE for name in t.params}
    assert set(report.search.importances) <= params
    assert sum(report.search.importances.values()) == pytest.approx(1.0, abs=1e-6)


def test_embedding_figure_matches_params(report, study):
    figure = report.figure("search-embedding-dim")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(figure.series[0].x) == sorted(t.params["model.embedding_dim"] for t in complete)


def test_leaderboard_sorted_and_matches_study(report, study):
    table = report.leaderboard.table
    column = {name: i for i, name in enumerate(table.columns)}
    values = [row[column["val_ndcg@10"]] for row in table.rows]
    assert values == sorted(values, reverse=True)
    by_number = {t.number: t for t in study.trials}
    for row in table.rows:
        trial = by_number[row[column["trial"]]]
        assert row[column["val_ndcg@10"]] == trial.values[0]
        assert row[column["val_recall@10"]] == trial.user_attrs["validation"]["recall@10"]
        assert row[column["parameters"]] == trial.user_attrs["n_parameters"]
        for name in table.columns[column["train s"] + 1 :]:
            assert row[column[name]] == trial.params.get(name)


def test_comparison_has_every_metric_and_k(report):
    comparison = report.comparison
    assert comparison.ks == list(REPORT_KS)
    assert comparison.models[0].name == WINNER
    for model in comparison.models:
        for name in METRICS:
            for k in REPORT_KS:
                estimate = model.metrics[f"{name}@{k}"]
                assert estimate.lower <= estimate.mean <= estimate.upper, (model.name, name, k)
        assert set(model.coverage) == {f"coverage@{k}" for k in REPORT_KS}


def test_winner_matches_evaluation_json(report, evaluation):
    # Both come from the shared evaluator on the same split, so they agree exactly.
    winner = report.comparison.models[0]
    refit = next(m for m in report.comparison.models if m.name == "refit")
    for k in set(REPORT_KS) & {10, 20, 50}:
        for name in METRICS:
            assert winner.metrics[f"{name}@{k}"].mean == pytest.approx(evaluation["winner_test"][f"{name}@{k}"], abs=1e-6)
            assert refit.metrics[f"{name}@{k}"].mean == pytest.approx(evaluation["refit_test"][f"{name}@{k}"], abs=1e-6)
        assert winner.coverage[f"coverage@{k}"] == pytest.approx(evaluation["winner_test"][f"coverage@{k}"])


@pytest.mark.parametrize("baseline", ["most_popular", "item_knn", "ease"])
def test_baselines_match_evaluation_json(report, evaluation, baseline):
    model = next(m for m in report.comparison.models if m.name == baseline)
    for name in METRICS:
        assert model.metrics[f"{name}@10"].mean == pytest.approx(evaluation["baselines"][baseline][f"{name}@10"], abs=1e-6)


def test_test_users_counted(report, dataset):
    split = evaluation_split(dataset, "test")
    assert report.comparison.n_users == int((np.diff(split.target.indptr) > 0).sum())


def test_verdict_names_best_baseline(report):
    comparison = report.comparison
    baselines = [m for m in comparison.models if m.name not in ("winner", "refit")]
    best = max(baselines, key=lambda m: m.metrics["ndcg@10"].mean)
    assert comparison.best_baseline == best.name
    assert best.name in comparison.verdict
    difference = comparison.difference
    assert difference.mean == pytest.approx(comparison.models[0].metrics["ndcg@10"].mean - best.metrics["ndcg@10"].mean)
    assert comparison.significant == (difference.lower > 0 or difference.upper < 0)
    expected = "not significantly" if not comparison.significant else "significantly"
    assert expected in comparison.verdict


def test_comparison_figure_matches_table(report):
    figure = report.figure("test-metrics")
    for series, model in zip(figure.series, report.comparison.models):
        assert series.name == model.name
        assert series.y == [model.metrics[f"{name}@10"].mean for name in METRICS]
        assert series.lower == [model.metrics[f"{name}@10"].lower for name in METRICS]


def test_history_segments_cover_every_user(report):
    for model, groups in report.segments.by_history_length.items():
        assert sum(g["n_users"] for g in groups.values()) == report.comparison.n_users, model


def test_segment_means_average_to_total(report):
    winner = report.comparison.models[0].metrics["ndcg@10"].mean
    groups = report.segments.by_history_length[WINNER].values()
    weighted = sum(g["ndcg@10"] * g["n_users"] for g in groups) / sum(g["n_users"] for g in groups)
    assert weighted == pytest.approx(winner)


def test_popularity_bias_reference(report, dataset):
    bias = report.segments.popularity
    assert bias["most_popular"]["head_share"] == pytest.approx(1.0)
    test_items = dataset.test.item
    popularity = np.bincount(dataset.train.item, minlength=dataset.n_items)
    assert bias["test items"]["mean_item_popularity"] == pytest.approx(popularity[test_items].mean())


def test_gini_bounds():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    assert gini(np.zeros(5)) == 0.0


def test_training_history_matches_metrics(report, search_run):
    metrics = json.loads((search_run / "winner" / "metrics.json").read_text(encoding="utf-8"))
    assert report.training.history == metrics["history"]
    assert report.training.best_epoch == metrics["best_epoch"]
    loss = report.figure("training-loss").series[0]
    assert loss.x == [row["epoch"] + 1 for row in metrics["history"]]
    assert loss.y == [row["train_loss"] for row in metrics["history"]]
    validation = {s.name: s.y for s in report.figure("training-validation").series}
    assert validation["ndcg@10"] == [row["val_ndcg@10"] for row in metrics["history"]]


def test_not_exported_said(report):
    assert report.export.exported is False
    assert "not been exported" in report.export.note


def test_examples_agree_with_data(report, dataset):
    assert report.examples
    user_index = {str(u): i for i, u in enumerate(dataset.user_ids)}
    item_index = {str(i): n for n, i in enumerate(dataset.item_ids)}
    split = evaluation_split(dataset, "test")
    for example in report.examples:
        user = user_index[example.user_id]
        known = set(split.known.row(user).tolist())
        held_out = set(split.target.row(user).tolist())
        assert example.n_known == len(known)
        assert {item_index[i["id"]] for i in example.recent} <= known
        assert {item_index[i["id"]] for i in example.held_out} == held_out
        assert len(example.recommended) == 10
        for item in example.recommended:
            assert item_index[item["id"]] not in known
            assert item["hit"] == (item_index[item["id"]] in held_out)


def test_example_labels_show_categories(report, dataset):
    items = pl.read_parquet(dataset.root / "items.parquet")
    vocabulary = pl.read_parquet(dataset.root / "features" / "item.category.parquet")
    category = dict(zip(vocabulary["index"].to_list(), vocabulary["value"].to_list()))
    code = dict(zip(items["item_id"].to_list(), items["category"].to_list()))
    item = report.examples[0].recommended[0]
    assert f"category {category[code[item['id']]]}" in item["label"]


def test_json_is_strict(report):
    text = report.to_json()
    assert "NaN" not in text
    assert "Infinity" not in text
    data = json.loads(text)
    assert len(data["figures"]) == len(report.figures)
    for figure in data["figures"]:
        assert figure["x_label"] and figure["y_label"], figure["id"]
        for series in figure["series"]:
            assert len(series["x"]) == len(series["y"]), (figure["id"], series["name"])
            assert all(v is None or not isinstance(v, float) or math.isfinite(v) for v in series["y"])
