"""Search quality against wall time on MovieLens-1M: TPE with pruning vs random search without.

One run ingests ``../shared/datasets/movielens-1m/ratings.csv`` (random per-user split:
the stored copy has no timestamps), then runs two searches with the same time budget,
one after the other in this process:

- TPE (multivariate) with the Hyperband pruner;
- random sampling with no pruner.

For each it prints the best validation NDCG@10 reached by 25%, 50%, 75% and 100% of
the budget, and for the TPE winner the test NDCG@10 of the trial model and of its refit
beside every baseline on the same split. The figures go to BENCHMARKS.md.
Usage: python benchmarks/search_benchmark.py [--budget 600] [--max-epochs 10] [--no-page]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
ML1M = ROOT.parent / "shared" / "datasets" / "movielens-1m" / "ratings.csv"


def best_by_fraction(study, started: float, budget: float) -> list[float]:
    """Best validation NDCG@10 among trials completed by each quarter of the budget.

    The last column takes every trial: a trial started before the timeout may end after it.
    """
    finished = [
        (t.datetime_complete.timestamp() - started, t.values[0])
        for t in study.trials
        if t.state.name == "COMPLETE" and t.values and t.datetime_complete is not None
    ]
    marks = []
    for fraction in (0.25, 0.5, 0.75, 1.0):
        within = [value for seconds, value in finished if fraction == 1.0 or seconds <= fraction * budget]
        marks.append(max(within) if within else float("nan"))
    return marks


def run_arm(data_dir: Path, run_dir: Path, sampler: str, pruner: str, budget: float, max_epochs: int, refit: bool):
    import optuna

    from recsearch.search import SearchConfig, run_search

    started = time.time()
    result = run_search(
        data_dir,
        run_dir,
        SearchConfig(
            n_trials=None, timeout=budget, sampler=sampler, pruner=pruner, max_epochs=max_epochs, seed=0,
            refit=refit, final_model=False,
        ),
    )
    study = optuna.load_study(study_name="recsearch", storage=f"sqlite:///{run_dir / 'study.db'}")
    return result, best_by_fraction(study, started, budget)


def refit_with_seeds(data_dir: Path, run_dir: Path, epochs: int, seeds) -> list[dict[str, float]]:
    """Refit the winner of ``run_dir`` on train + validation once per training seed; return the test metrics.

    One refit is one draw of the initialisation and batch order. The spread over a few
    seeds shows how far one refit's score can be read.
    """
    from recsearch.data.load import load_dataset
    from recsearch.train import RunConfig, train_model

    config = RunConfig.from_json((run_dir / "winner" / "config.json").read_text(encoding="utf-8"))
    merged = load_dataset(data_dir).merged()
    metrics = []
    for seed in seeds:
        fixed = config.model_copy(update={"train": config.train.model_copy(update={"max_epochs": epochs, "seed": seed})})
        result = train_model(merged, fixed, run_dir / f"refit-seed-{seed}", select_best=False, evaluate_test=True)
        metrics.append(result.test_metrics)
        print(f"refit with seed {seed}: test NDCG@10 {result.test_metrics['ndcg@10']:.4f}", flush=True)
    return metrics


def ease_refit_test(data_dir: Path) -> dict[str, float]:
    """Return the test metrics of EASE fitted on train + validation, its l2 chosen on validation as usual.

    The refit winner trains on both splits, so this is the baseline to set beside it.
    """
    from recsearch.data.load import load_dataset
    from recsearch.evaluate.baselines import EASE
    from recsearch.evaluate.protocol import evaluate_split, evaluation_split, run_baselines, scorer_of

    dataset = load_dataset(data_dir)
    l2 = run_baselines(dataset, split="test", names=("ease",))["ease"].params["l2"]
    merged = dataset.merged()
    model = EASE().fit(merged.train.user_items(dataset.n_users, dataset.n_items)).set_l2(l2)
    test = evaluation_split(dataset, "test")
    return evaluate_split(scorer_of(model, test.known), test).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds of search per arm (default: 600)")
    parser.add_argument("--max-epochs", type=int, default=10, help="epochs per trial at most (default: 10)")
    parser.add_argument("--refit-seeds", type=int, default=3,
                        help="training seeds of the TPE winner's refit, the search's own included (default: 3)")
    parser.add_argument("--no-page", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if not ML1M.is_file():
        sys.exit(f"MovieLens-1M not found at {ML1M}; this benchmark needs ../shared/datasets")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("lightning", "lightning.pytorch", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)

    from recsearch.ingest import IngestConfig, ingest

    with tempfile.TemporaryDirectory(prefix="recsearch-search-bench-") as scratch:
        scratch = Path(scratch)
        ingest(IngestConfig(input=ML1M, out=scratch / "data", preset="movielens"))
        arms = {}
        for name, sampler, pruner, refit in (("tpe+hyperband", "tpe", "hyperband", True), ("random", "random", "none", False)):
            arm_started = time.perf_counter()
            result, marks = run_arm(scratch / "data", scratch / name, sampler, pruner, args.budget, args.max_epochs, refit)
            arms[name] = (result, marks, time.perf_counter() - arm_started)
            print(f"{name}: trials {result.counts}, best val NDCG@10 by quarter {['%.4f' % m for m in marks]}")
        evaluation = json.loads((scratch / "tpe+hyperband" / "evaluation.json").read_text())
        ease_refit = ease_refit_test(scratch / "data")
        refits = [evaluation["refit_test"]] + refit_with_seeds(
            scratch / "data", scratch / "tpe+hyperband", evaluation["epochs"], range(1, args.refit_seeds)
        )

    tpe = arms["tpe+hyperband"][0]
    rows = "\n".join(
        f"| {name} | {result.counts.get('complete', 0)} | {result.counts.get('pruned', 0)} | "
        + " | ".join(f"{m:.4f}" for m in marks)
        + f" | {seconds:.0f} |"
        for name, (result, marks, seconds) in arms.items()
    )
    baseline_rows = "\n".join(
        f"| {name} | {metrics['ndcg@10']:.4f} | {metrics['recall@20']:.4f} |"
        for name, metrics in sorted(evaluation["baselines"].items(), key=lambda kv: -kv[1]["ndcg@10"])
    )
    spread = {
        metric: (np.mean([r[metric] for r in refits]), min(r[metric] for r in refits), max(r[metric] for r in refits))
        for metric in ("ndcg@10", "recall@20")
    }
    spread_row = (
        f"| winner refit, {len(refits)} training seeds: mean (min-max) | "
        + " | ".join(f"{mean:.4f} ({low:.4f}-{high:.4f})" for mean, low, high in spread.values())
        + " |"
    )
    not_beaten = evaluation["baselines_not_beaten"]
    verdict = "beats every baseline" if not not_beaten else f"does not beat {', '.join(not_beaten)}"
    body = f"""## Search (`benchmarks/search_benchmark.py`)

Run on {date.today().isoformat()}: MovieLens-1M (1,000,209 ratings, random per-user split,
no timestamps in the stored copy), {args.budget:.0f} s of search per arm, at most
{args.max_epochs} epochs per trial, default search space, seed 0. The arms ran one after the
other in one process; other work shared the 2 cores, so compare the arms, not absolute times.

Best validation NDCG@10 reached by each share of the budget:

| arm | completed | pruned | 25% | 50% | 75% | 100% | seconds incl. refit |
|---|---:|---:|---:|---:|---:|---:|---:|
{rows}

Test split, TPE winner (trial {tpe.winner_number}) against the baselines fitted on the same training split:

| model | NDCG@10 | Recall@20 |
|---|---:|---:|
| winner trial (trained on train) | {evaluation['winner_test']['ndcg@10']:.4f} | {evaluation['winner_test']['recall@20']:.4f} |
| winner refit on train + validation ({evaluation['epochs']} epochs) | {evaluation['refit_test']['ndcg@10']:.4f} | {evaluation['refit_test']['recall@20']:.4f} |
{spread_row}
| ease refit on train + validation (l2 as chosen on validation) | {ease_refit['ndcg@10']:.4f} | {ease_refit['recall@20']:.4f} |
{baseline_rows}

Verdict: the winner {verdict} on test NDCG@10.
"""
    print(body)
    if not args.no_page:
        from page import write_section

        print(f"written to {write_section('search', body)}")


if __name__ == "__main__":
    main()
