"""Entry point of the ``recsearch`` console script."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from recsearch import __version__
from recsearch.errors import RecsearchError

# Each module defines register(subparsers), which adds one subcommand whose
# parser has `handler` set as a default: a function taking the parsed namespace
# and returning an exit status.
COMMAND_MODULES = (
    "recsearch.cli.ingest_cmd",
    "recsearch.cli.generate_cmd",
    "recsearch.cli.train_cmd",
    "recsearch.cli.search_cmd",
    "recsearch.cli.run_cmd",
    "recsearch.cli.demo_cmd",
    "recsearch.cli.export_cmd",
    "recsearch.cli.serve_cmd",
    "recsearch.cli.recommend_cmd",
    "recsearch.cli.report_cmd",
)

console = Console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsearch",
        description="Recommender AutoML: click log in, tuned embedding model and top-k endpoint out.",
    )
    parser.add_argument("--version", action="version", version=f"recsearch {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more detail (-v info, -vv debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.INFO
    if quiet:
        level = logging.WARNING
    elif verbose >= 2:
        level = logging.DEBUG
    handler = RichHandler(console=console, show_path=verbose >= 2, markup=False)
    if verbose < 2:
        # Third-party libraries log a lot at INFO; keep their warnings only. A filter on the
        # handler, because Lightning sets its own logger back to INFO when it is imported.
        handler.addFilter(_library_warnings_only)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
    if verbose < 2:
        # Lightning 2.6 warns about its own use of a deprecated torch class on every run; nothing to act on.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


_LIBRARIES = ("lightning", "lightning_fabric", "pytorch_lightning", "optuna", "faiss")


def _library_warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] not in _LIBRARIES


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.handler(args) or 0)
    except RecsearchError as exc:
        # Soft wrap keeps the message on one line, so paths and values in it stay whole for grep.
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
