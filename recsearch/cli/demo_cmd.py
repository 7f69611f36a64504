"""`recsearch demo`: the main job on the embedded synthetic click log, with no input and no network."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from recsearch.cli.ingest_cmd import print_ingest_summary
from recsearch.cli.progress import console, stage_progress
from recsearch.cli.search_cmd import print_search_summary, search_progress


def _handle(args: argparse.Namespace) -> int:
    from recsearch.datasets import SYNTHETIC_EVENT_WEIGHTS, SYNTHETIC_ITEM_FEATURES, SyntheticConfig
    from recsearch.datasets import generate_clicklog, write_clicklog
    from recsearch.ingest import STAGES, IngestConfig, ingest
    from recsearch.export import ExportConfig
    from recsearch.search import SearchConfig, run_search

    out: Path = args.out
    log_path = out / "clicks.csv.gz"
    with console.status("generating the synthetic click log"):
        write_clicklog(generate_clicklog(SyntheticConfig(seed=args.seed)), log_path)
    console.print(f"synthetic click log written to {log_path}")

    config = IngestConfig(
        input=log_path,
        out=out / "data",
        event_weights=dict(SYNTHETIC_EVENT_WEIGHTS),
        item_features=SYNTHETIC_ITEM_FEATURES,
        min_user_interactions=2,
        overwrite=True,
    )
    with stage_progress("ingest", STAGES) as on_stage:
        ingested = ingest(config, on_stage=on_stage)
    print_ingest_summary(ingested)
    if args.trials == 0:
        return 0

    if args.verbose < 1:
        logging.getLogger("optuna").setLevel(logging.WARNING)
    search = SearchConfig(n_trials=args.trials, max_epochs=args.max_epochs, seed=args.seed, final_model=False)
    with search_progress(search.n_trials) as on_trial:
        result = run_search(out / "data", out / "run", search, on_trial=on_trial)
    print_search_summary(result)

    from recsearch.export import export_model
    from recsearch.report import ReportConfig, build_report, write_report

    with console.status("exporting the model and writing the report"):
        manifest = export_model(out / "run", out / "run" / "model", ExportConfig(overwrite=True))
        paths = write_report(build_report(out / "run", ReportConfig()), out / "run" / "report.html")
    console.print(f"model {manifest.get('model_version', '')} exported to {out / 'run' / 'model'}")
    console.print(f"report written to {paths['html']}")
    console.print(f"serve it with: recsearch serve {out / 'run' / 'model'} --port 50051")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the main job on the embedded synthetic click log",
        description="Generate the synthetic e-commerce click log, ingest it, search two-tower "
        "configurations on it, score the winner on test beside the baselines, export it "
        "and write the offline report.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the log and the search (default: 0)")
    parser.add_argument("--trials", type=int, default=8, help="search trials; 0 stops after ingestion (default: 8)")
    parser.add_argument("--max-epochs", type=int, default=8, help="epochs per trial at most (default: 8)")
    parser.set_defaults(handler=_handle)
