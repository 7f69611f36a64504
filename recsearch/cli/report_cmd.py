"""`recsearch report RUN_DIR [--out FILE]`: the offline evaluation report of a search run."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsearch.cli.progress import console, key_value_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the offline evaluation report of a search run (HTML, JSON, Markdown)",
        description=(
            "Re-score the winner and the baselines on the test split with bootstrap intervals, read the study, "
            "and write a self-contained HTML page with report.json and report.md beside it."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="output of `recsearch search`")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="HTML file to write; the .json and .md files take the same name (default: RUN_DIR/report.html)")
    parser.add_argument("--data", type=Path, metavar="DATA_DIR",
                        help="the dataset the run searched on, when it moved (default: the path the study records)")
    parser.add_argument("--model-dir", type=Path, metavar="MODEL_DIR",
                        help="exported model directory whose index recall and latency to show (default: RUN_DIR/export)")
    parser.add_argument("--storage", metavar="URL",
                        help="study storage URL, required when search.json contains a masked password (default: from search.json)")
    parser.add_argument("--resamples", type=int, default=1_000, metavar="N",
                        help="bootstrap resamples of the test users for the confidence intervals (default: 1000)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="confidence level of the intervals (default: 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default: 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `recsearch --help` does not load torch.
    from recsearch.report import ReportConfig, build_report, write_report

    config = ReportConfig(
        data_dir=args.data, model_dir=args.model_dir, storage=args.storage,
        n_resamples=args.resamples, confidence=args.confidence, seed=args.seed,
    )
    out = args.out or args.run_dir / "report.html"
    with console.status(f"building the report of {args.run_dir}"):
        report = build_report(args.run_dir, config)
        paths = write_report(report, out)

    console.print(report.comparison.verdict)
    console.print(key_value_table("report", [(kind, str(path)) for kind, path in paths.items()]))
    return 0
