"""`recsearch search DATA_DIR --out RUN_DIR`: search two-tower configurations with Optuna."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from recsearch.cli.progress import console, key_value_table
from recsearch.errors import InputError


def _objectives(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _select(values: list[str]) -> tuple[str, float]:
    rule = values[0]
    if rule == "best" and len(values) == 1:
        return rule, 0.01
    if rule == "smallest-within" and len(values) == 2:
        try:
            return rule, float(values[1])
        except ValueError:
            pass
    raise InputError(
        f"invalid --select {' '.join(values)!r}; use 'best' or 'smallest-within TOLERANCE', e.g. smallest-within 0.01"
    )


def add_search_options(parser: argparse.ArgumentParser) -> None:
    """Add the search options; `recsearch run` reuses them."""
    group = parser.add_argument_group("search")
    group.add_argument("--trials", type=int, default=20, help="finished trials the study should reach (default: 20)")
    group.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    group.add_argument("--trial-timeout", type=float,
                       help="stop one trial's training after this many seconds, keeping its best epoch "
                            "(default: a third of --timeout, else no limit)")
    group.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host/db (default: SQLite in RUN_DIR)")
    group.add_argument("--study-name", default="recsearch", help="study name inside the storage (default: recsearch)")
    group.add_argument("--space", type=Path, help="TOML or YAML file narrowing or widening the default search space")
    group.add_argument("--objective", type=_objectives, default=("ndcg",),
                       help="ndcg (default), or ndcg,params / ndcg,bytes for a quality-vs-size Pareto front")
    group.add_argument("--sampler", choices=("tpe", "random", "nsga2"), default="tpe",
                       help="tpe: multivariate TPE, also multi-objective (default); random; nsga2")
    group.add_argument("--pruner", choices=("hyperband", "median", "none"), default="hyperband",
                       help="stops weak trials early from their per-epoch validation NDCG (default: hyperband)")
    group.add_argument("--select", nargs="+", default=["best"], metavar="RULE",
                       help="winner rule: best (default) or smallest-within TOLERANCE (relative NDCG)")
    group.add_argument("--max-epochs", type=int, help="epochs per trial at most (default: the space's, 20)")
    group.add_argument("--seed", type=int, default=0, help="sampler seed; with `recsearch run` also the split seed (default: 0)")
    group.add_argument("--no-refit", action="store_true",
                       help="skip retraining the winner on train + validation and scoring it on test")
    group.add_argument("--no-final-model", action="store_true",
                       help="skip retraining the winner on every interaction for export")
    group.add_argument("--heartbeat-interval", type=int, default=10,
                       help="seconds between a running trial's heartbeats in the storage (default: 10)")
    group.add_argument("--grace-period", type=int, default=30,
                       help="seconds without a heartbeat after which another worker fails and retries "
                            "a running trial (default: 30)")


def search_config_from_args(args: argparse.Namespace):
    from recsearch.search import SearchConfig

    rule, tolerance = _select(args.select)
    return SearchConfig(
        n_trials=args.trials,
        timeout=args.timeout,
        storage=args.storage,
        study_name=args.study_name,
        space_file=args.space,
        objectives=args.objective,
        sampler=args.sampler,
        pruner=args.pruner,
        seed=args.seed,
        select=rule,
        tolerance=tolerance,
        max_epochs=args.max_epochs,
        trial_timeout=args.trial_timeout,
        refit=not args.no_refit,
        final_model=not args.no_final_model,
        heartbeat_seconds=args.heartbeat_interval,
        grace_seconds=args.grace_period,
    )


def print_search_summary(result) -> None:
    rows: list[tuple[str, object]] = [
        ("study", f"{result.study_name} in {result.storage}"),
        *[(f"trials {state}", n) for state, n in result.counts.items() if n],
        ("winner trial", result.winner_number),
        ("winner validation NDCG@10", f"{result.winner_value:.4f}"),
        ("seconds", f"{result.seconds:.1f}"),
        ("written to", str(result.run_dir)),
    ]
    if result.pareto:
        rows.append(("Pareto front (trial: ndcg, size objective)",
                     "; ".join(f"{p['number']}: {p['ndcg']:.4f}, {p['size']:,.0f}" for p in result.pareto)))
    if result.refit is not None:
        refit = result.refit
        rows.append(("winner test NDCG@10 (trained on train)", f"{refit.winner_test.get('ndcg@10', float('nan')):.4f}"))
        rows.append((f"refit test NDCG@10 ({refit.epochs} epochs on train + validation)",
                     f"{refit.refit_test.get('ndcg@10', float('nan')):.4f}"))
        best = refit.best_baseline
        if best:
            rows.append((f"best baseline: {best[0]}", f"{best[1]:.4f}"))
            verdict = "beats every baseline" if not refit.not_beaten else f"does not beat {', '.join(refit.not_beaten)}"
            rows.append(("verdict (winner vs baselines)", verdict))
    if result.stopped_early:
        rows.append(("stopped", "on request, after the running trial"))
    console.print(key_value_table("Search", rows))


@contextmanager
def search_progress(n_trials: int | None) -> Iterator[Callable]:
    """Show a bar of finished trials with the best validation NDCG so far."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
    task = progress.add_task("search", total=n_trials)

    def on_trial(study, trial) -> None:
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and t.state.name != "FAIL"]
        best = max((t.values[0] for t in finished if t.values), default=float("nan"))
        progress.update(task, completed=len(finished), description=f"search: best val NDCG@10 {best:.4f}")

    with progress:
        yield on_trial


def _handle(args: argparse.Namespace) -> int:
    from recsearch.search import run_search

    config = search_config_from_args(args)
    if args.verbose < 1:
        logging.getLogger("optuna").setLevel(logging.WARNING)
    with search_progress(config.n_trials) as on_trial:
        result = run_search(args.data_dir, args.out, config, on_trial=on_trial)
    print_search_summary(result)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search two-tower configurations on a dataset directory",
        description="Search embedding sizes, towers, losses and optimiser settings with Optuna, "
        "training each trial with Lightning. Running the same command again continues the study.",
    )
    parser.add_argument("data_dir", type=Path, help="dataset directory written by `recsearch ingest`")
    parser.add_argument("--out", type=Path, required=True, help="run directory for the study and its results")
    add_search_options(parser)
    parser.set_defaults(handler=_handle)
