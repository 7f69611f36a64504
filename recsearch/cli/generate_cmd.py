"""`recsearch generate OUT`: write the synthetic e-commerce click log."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsearch.cli.progress import console, key_value_table


def _handle(args: argparse.Namespace) -> int:
    from recsearch.datasets import SyntheticConfig, generate_clicklog, write_clicklog

    if args.events is not None:
        config = SyntheticConfig.for_events(args.events, seed=args.seed)
    else:
        config = SyntheticConfig(n_users=args.users, n_items=args.items, seed=args.seed)
    with console.status("generating the synthetic click log"):
        frame = generate_clicklog(config)
        path = write_clicklog(frame, args.out)
    console.print(
        key_value_table(
            "Synthetic click log",
            [
                ("rows", frame.height),
                ("users", config.n_users),
                ("items in catalogue", config.n_items),
                ("categories", config.n_categories),
                ("seed", config.seed),
                ("written to", str(path)),
            ],
        )
    )
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write the synthetic e-commerce click log (the embedded default dataset)",
        description="Write a deterministic synthetic click log with views, add-to-carts and purchases.",
    )
    parser.add_argument("out", type=Path, help="file to write: .csv, .tsv, .parquet, .ndjson, optionally + .gz")
    parser.add_argument("--events", type=int, help="approximate number of rows (sizes users and items)")
    parser.add_argument("--users", type=int, default=2_000, help="number of users (default: 2000)")
    parser.add_argument("--items", type=int, default=1_500, help="catalogue size (default: 1500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.set_defaults(handler=_handle)
