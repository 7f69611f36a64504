"""`recsearch export RUN_DIR --out MODEL_DIR`: write a servable model directory from a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsearch.cli.progress import console, key_value_table
from recsearch.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained run to a model directory for `recsearch serve`",
        description=(
            "Export the model of RUN_DIR (its final/, refit/ or winner/ model after a search, else RUN_DIR "
            "itself) with its item vectors, FAISS index, ONNX user tower and a checksummed manifest."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="output of `recsearch search` or `recsearch train`")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL_DIR", help="directory to create")
    parser.add_argument("--data", type=Path, metavar="DATA_DIR",
                        help="the dataset the run was trained on, when it moved (default: the path in metrics.json)")
    add_index_options(parser)
    parser.add_argument("--link", type=Path, metavar="PATH",
                        help="after writing, point the symbolic link PATH at MODEL_DIR atomically (for hot reload)")
    parser.add_argument("--overwrite", action="store_true", help="replace MODEL_DIR if it exists")
    parser.set_defaults(handler=run)


def add_index_options(parser: argparse.ArgumentParser) -> None:
    """Add the index options; `recsearch run` reuses them."""
    group = parser.add_argument_group("index")
    group.add_argument("--index", default="auto", choices=("auto", "flat", "ivfsq8", "ivfflat", "hnsw", "ivfpq"),
                       help="item index kind (default: auto, exact up to --exact-below items, else IVF-SQ8)")
    group.add_argument("--exact-below", type=int, default=50_000, metavar="N",
                       help="catalogues up to N items get the exact flat index with --index auto (default: 50000)")
    group.add_argument("--target-recall", type=float, default=0.95,
                       help="recall@10 against exact search that an approximate index must reach (default: 0.95)")
    group.add_argument("--recall-queries", type=int, default=1_000, metavar="N",
                       help="user vectors sampled to measure recall and latency (default: 1000)")
    group.add_argument("--max-index-mb", type=float, metavar="MB",
                       help="memory budget of the index; with --index auto, a flat index above it is skipped "
                            "and IVF-PQ is chosen when IVF-SQ8 exceeds it")


def index_config_from_args(args: argparse.Namespace):
    from recsearch.export import IndexConfig

    if args.max_index_mb is not None and args.max_index_mb <= 0:
        raise InputError(f"--max-index-mb must be positive, got {args.max_index_mb}")
    return IndexConfig(
        kind=args.index,
        exact_below=args.exact_below,
        target_recall=args.target_recall,
        n_queries=args.recall_queries,
        max_index_bytes=None if args.max_index_mb is None else int(args.max_index_mb * 2**20),
    )


def run(args: argparse.Namespace) -> int:
    # Imported here so that `recsearch --help` does not load torch.
    from recsearch.export import ExportConfig, export_model
    from recsearch.model_dir import switch_link

    index = index_config_from_args(args)
    with console.status(f"exporting {args.run_dir}"):
        manifest = export_model(args.run_dir, args.out, ExportConfig(index=index, data_dir=args.data, overwrite=args.overwrite))
    if args.link is not None:
        switch_link(args.link, args.out)

    index_info = manifest["index"]
    rows = [
        ("model version", manifest["model_version"]),
        ("exported run", manifest["source"]["model_run"]),
        ("items", manifest["n_items"]),
        ("users", manifest["n_users"]),
        ("index", f"{index_info['kind']} {index_info['params'] or ''}".strip()),
        ("index recall@10", f"{index_info['recall_at_10']:.3f}"),
        ("search p50 / p99", f"{index_info['search_latency_us']['p50']:.0f} / {index_info['search_latency_us']['p99']:.0f} us"),
        ("user tower", "ONNX" if manifest["user_tower"] else "none (user vectors only)"),
    ]
    if args.link is not None:
        rows.append(("link", f"{args.link} -> {args.out}"))
    console.print(key_value_table(f"exported {args.out}", rows))
    return 0
