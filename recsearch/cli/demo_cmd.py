"""`recsearch demo`: the main job on the embedded synthetic click log, with no input and no network."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsearch.cli.ingest_cmd import print_ingest_summary
from recsearch.cli.progress import console, stage_progress


def _handle(args: argparse.Namespace) -> int:
    from recsearch.datasets import SYNTHETIC_EVENT_WEIGHTS, SYNTHETIC_ITEM_FEATURES, SyntheticConfig
    from recsearch.datasets import generate_clicklog, write_clicklog
    from recsearch.ingest import STAGES, IngestConfig, ingest

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
        result = ingest(config, on_stage=on_stage)
    print_ingest_summary(result)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the main job on the embedded synthetic click log",
        description="Generate the synthetic e-commerce click log and run the pipeline on it.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic log (default: 0)")
    parser.set_defaults(handler=_handle)
