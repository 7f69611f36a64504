from __future__ import annotations

import json

import optuna
import polars as pl

from recsearch.cli.main import main
from recsearch.data import load_dataset
from recsearch.evaluate import run_baselines
from recsearch.search import SearchConfig, run_search


def _states(run_dir) -> list[str]:
    study = optuna.load_study(study_name="recsearch", storage=f"sqlite:///{run_dir / 'study.db'}")
    return [t.state.name for t in study.trials]


def test_search_beats_popularity(search_data, fast_space, tmp_path):
    result = run_search(search_data, tmp_path / "run", SearchConfig(n_trials=6, space_file=fast_space, seed=0))
    popularity = run_baselines(load_dataset(search_data), split="validation", names=["most_popular"])
    assert result.winner_value > popularity["most_popular"].metrics["ndcg@10"]
    assert (tmp_path / "run" / "winner" / "config.json").is_file()
    assert (tmp_path / "run" / "leaderboard.csv").is_file()
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert len(board) == sum(result.counts.values())
    assert {row["state"] for row in board} <= {"COMPLETE", "PRUNED", "FAIL"}


def test_resume_continues_count(search_data, fast_space, tmp_path):
    config = SearchConfig(n_trials=2, space_file=fast_space, pruner="none")
    run_search(search_data, tmp_path / "run", config)
    assert len(_states(tmp_path / "run")) == 2
    second = run_search(search_data, tmp_path / "run", SearchConfig(n_trials=4, space_file=fast_space, pruner="none"))
    assert second.counts["complete"] == 4
    study = optuna.load_study(study_name="recsearch", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    # A third run with the budget already reached starts no trial.
    third = run_search(search_data, tmp_path / "run", SearchConfig(n_trials=4, space_file=fast_space, pruner="none"))
    assert third.counts["complete"] == 4


def test_pruning_prunes(search_data, tmp_path):
    # Learning rates down to 1e-7 give trials that learn nothing, which the median
    # pruner stops after their first epochs.
    space = tmp_path / "space.toml"
    space.write_text(
        '[params."train.learning_rate"]\nlow = 1e-7\nhigh = 0.05\nlog = true\n'
        '[params."model.embedding_dim"]\nchoices = [16]\n'
        '[params."train.batch_size"]\nchoices = [512]\n'
        '[params."model.user_tower.history"]\nchoices = ["none"]\n'
        '[fixed]\n"train.max_epochs" = 4\n"train.patience" = 4\n"model.loss.kind" = "bpr"\n',
        encoding="utf-8",
    )
    result = run_search(
        search_data, tmp_path / "run",
        SearchConfig(n_trials=10, space_file=space, pruner="median", sampler="random", seed=3),
    )
    assert result.counts["pruned"] >= 1
    board = pl.read_csv(tmp_path / "run" / "leaderboard.csv")
    pruned = board.filter(pl.col("state") == "PRUNED")
    assert pruned["pruned_at_epoch"].min() < 3  # at least one stopped before its last epoch


def test_multi_objective_pareto(search_data, fast_space, tmp_path):
    result = run_search(
        search_data, tmp_path / "run", SearchConfig(n_trials=4, space_file=fast_space, objectives=("ndcg", "bytes"))
    )
    assert result.pareto
    for point in result.pareto:
        others = [p for p in result.pareto if p is not point]
        assert not any(o["ndcg"] >= point["ndcg"] and o["size"] <= point["size"] for o in others)


def test_search_command(search_data, fast_space, tmp_path):
    status = main([
        "search", str(search_data), "--out", str(tmp_path / "run"), "--trials", "2",
        "--space", str(fast_space), "--select", "smallest-within", "0.05",
    ])
    assert status == 0
    summary = json.loads((tmp_path / "run" / "search.json").read_text())
    assert summary["select"] == {"rule": "smallest-within", "tolerance": 0.05}
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 2


def test_search_command_rejects_bad_select(search_data, tmp_path, capsys):
    status = main(["search", str(search_data), "--out", str(tmp_path / "run"), "--select", "fastest"])
    assert status == 2
    assert "invalid --select 'fastest'" in capsys.readouterr().err


def test_resumed_study_keeps_its_parameter_ranges(search_data, fast_space, tmp_path):
    run_search(search_data, tmp_path / "run", SearchConfig(n_trials=1, space_file=fast_space, pruner="none"))
    wider = tmp_path / "wider.toml"
    # Another range for a parameter the study already has: Optuna would fail every new trial on it.
    wider.write_text(fast_space.read_text(encoding="utf-8").replace("choices = [16, 32]", "choices = [8, 16, 32]"),
                     encoding="utf-8")

    second = run_search(search_data, tmp_path / "run", SearchConfig(n_trials=3, space_file=wider, pruner="none"))

    assert second.counts["complete"] == 3
    assert _states(tmp_path / "run") == ["COMPLETE"] * 3


def test_failing_trials_stop_search(search_data, tmp_path):
    from recsearch.errors import InputError
    from recsearch.search import runner

    space = tmp_path / "broken.toml"
    # Every trial's configuration is rejected, so no trial can ever finish.
    space.write_text('[fixed]\n"model.loss.kind" = "no-such-loss"\n', encoding="utf-8")
    try:
        run_search(search_data, tmp_path / "run", SearchConfig(n_trials=2, space_file=space, pruner="none"))
    except InputError as exc:
        message = str(exc)
    else:
        raise AssertionError("a search whose every trial fails must stop with an error")
    assert "no-such-loss" in message
    assert _states(tmp_path / "run") == ["FAIL"] * runner.MAX_FAILURES_IN_A_ROW
