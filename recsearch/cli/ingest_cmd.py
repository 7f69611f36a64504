"""`recsearch ingest INPUT --out DATA_DIR`: turn an interaction log into a dataset directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Group

from recsearch.cli.progress import console, key_value_table, stage_progress
from recsearch.errors import InputError


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def add_ingest_options(parser: argparse.ArgumentParser, with_seed: bool = True) -> None:
    """Add every ingestion option; `recsearch run` reuses them, with one --seed for split and search."""
    read = parser.add_argument_group("reading")
    read.add_argument("--format", choices=("csv", "tsv", "parquet", "ndjson"), help="input format (default: from the file name)")
    read.add_argument("--separator", help="field separator of text files, e.g. ',' '\\t' '::' (default: sniffed)")
    read.add_argument("--quote-char", default='"', help="quote character of text files; 'none' disables quoting")
    read.add_argument("--columns", type=_names, help="column names of header-less text files, comma-separated")
    read.add_argument("--preset", default="generic", choices=("generic", "movielens", "retailrocket", "taobao"),
                      help="known layout: column names, time unit, event weights (default: generic)")

    cols = parser.add_argument_group("column mapping (default: the preset's names, or common spellings)")
    for role, meaning in (
        ("user", "user id"),
        ("item", "item id"),
        ("time", "timestamp: epoch s/ms/us/ns or ISO-8601"),
        ("event", "event type, weighted by --event-weights"),
        ("weight", "rating, quantity or count; multiplies the event weight"),
        ("session", "session id"),
    ):
        cols.add_argument(f"--{role}-col", help=f"column of the {meaning}")
    cols.add_argument("--no-time", action="store_true", help="ignore timestamps even if the log has them")
    cols.add_argument("--item-features", type=_names, default=(), help="categorical item attribute columns")
    cols.add_argument("--user-features", type=_names, default=(), help="categorical user attribute columns")
    cols.add_argument("--items", type=Path, help="separate item table holding the --item-features columns")
    cols.add_argument("--users", type=Path, help="separate user table holding the --user-features columns")
    cols.add_argument("--items-id-col", help="item id column of --items (default: the log's item column name)")
    cols.add_argument("--users-id-col", help="user id column of --users (default: the log's user column name)")

    values = parser.add_argument_group("values")
    values.add_argument("--time-unit", choices=("s", "ms", "us", "ns"), help="epoch unit (default: from magnitude)")
    values.add_argument("--timezone", default="UTC", help="zone of timestamps written without an offset (default: UTC)")
    values.add_argument("--event-weights", help="weight per event type, e.g. view=1,addtocart=3,transaction=5")
    values.add_argument("--unknown-events", choices=("error", "drop"), default="error",
                        help="event types missing from --event-weights: fail (default) or drop and count")
    values.add_argument("--min-rating", type=float, help="keep rows whose --weight-col value is at least this")
    values.add_argument("--on-bad-rows", choices=("error", "drop", "quarantine"), default="error",
                        help="rows with empty ids or unparseable values: fail (default), drop and count, "
                             "or write to quarantine.parquet and count")
    values.add_argument("--keep-duplicates", action="store_true",
                        help="keep byte-identical events instead of merging them (default: merge and count)")

    filters = parser.add_argument_group("filtering and splitting")
    filters.add_argument("--min-user-interactions", type=int, default=1, help="k-core: distinct items per user (default: 1)")
    filters.add_argument("--min-item-interactions", type=int, default=1, help="k-core: distinct users per item (default: 1)")
    filters.add_argument("--split", choices=("leave-last-out", "temporal", "random"),
                         help="default: leave-last-out with timestamps, random without")
    filters.add_argument("--test-fraction", type=float, default=0.1, help="random/temporal: test share (default: 0.1)")
    filters.add_argument("--validation-fraction", type=float, default=0.1,
                         help="random/temporal: validation share (default: 0.1)")
    filters.add_argument("--test-cut", help="temporal: ISO date of the test cut instead of a quantile")
    filters.add_argument("--validation-cut", help="temporal: ISO date of the validation cut")
    if with_seed:
        filters.add_argument("--seed", type=int, default=0, help="random split seed (default: 0)")


def ingest_config_from_args(args: argparse.Namespace, input_path: Path, out: Path):
    from recsearch.ingest import IngestConfig, parse_event_weights

    quote = None if (args.quote_char or "").lower() == "none" else args.quote_char
    if quote is not None and len(quote) != 1:
        raise InputError(f"--quote-char must be one character or 'none', got {args.quote_char!r}")
    separator = args.separator
    if separator is not None:
        separator = {"\\t": "\t", "tab": "\t"}.get(separator, separator)
    return IngestConfig(
        input=input_path,
        out=out,
        format=args.format,
        separator=separator,
        quote_char=quote,
        columns=args.columns,
        preset=args.preset,
        user_col=args.user_col,
        item_col=args.item_col,
        time_col=args.time_col,
        event_col=args.event_col,
        weight_col=args.weight_col,
        session_col=args.session_col,
        no_time=args.no_time,
        item_features=args.item_features,
        user_features=args.user_features,
        items_file=args.items,
        users_file=args.users,
        items_id_col=args.items_id_col,
        users_id_col=args.users_id_col,
        time_unit=args.time_unit,
        timezone=args.timezone,
        event_weights=parse_event_weights(args.event_weights) if args.event_weights else None,
        unknown_events=args.unknown_events,
        min_rating=args.min_rating,
        on_bad_rows=args.on_bad_rows,
        dedupe=not args.keep_duplicates,
        min_user_interactions=args.min_user_interactions,
        min_item_interactions=args.min_item_interactions,
        split=args.split,
        test_fraction=args.test_fraction,
        validation_fraction=args.validation_fraction,
        test_cut=args.test_cut,
        validation_cut=args.validation_cut,
        seed=args.seed,
        overwrite=getattr(args, "overwrite", False),
    )


def print_ingest_summary(result) -> None:
    report = result.report
    rows: list[tuple[str, object]] = [("rows read", report.rows_read)]
    rows += [(f"  dropped: {reason}", n) for reason, n in report.dropped_rows.items()]
    if report.quarantined_rows:
        rows.append(("  of which quarantined", report.quarantined_rows))
    rows += [
        ("valid events", report.events_valid),
        ("  merged into repeated pairs", report.events_merged),
        ("(user, item) pairs", report.pairs),
        ("  removed by k-core", report.kcore.get("pairs_removed", 0)),
        ("interactions kept", report.interactions),
        ("users", report.n_users),
        ("items", report.n_items),
        ("split", report.split.get("kind", "")),
    ]
    rows += [(f"  {name} pairs", n) for name, n in report.split_counts.items()]
    rows += [(f"  dropped: {reason}", n) for reason, n in report.dropped_split_pairs.items() if n]
    rows += [(f"  events dropped: {reason}", n) for reason, n in report.dropped_split_events.items() if n]
    if report.time_range:
        rows.append(("time range (UTC)", f"{report.time_range['min']} .. {report.time_range['max']}"))
    rows += [("warning", message) for message in report.warnings]
    rows.append(("written to", str(result.out)))
    rows.append(("seconds", f"{result.seconds:.1f}"))
    console.print(Group(key_value_table("Ingestion", rows)))


def _handle(args: argparse.Namespace) -> int:
    from recsearch.ingest import STAGES, ingest

    config = ingest_config_from_args(args, args.input, args.out)
    with stage_progress("ingest", STAGES) as on_stage:
        result = ingest(config, on_stage=on_stage)
    print_ingest_summary(result)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="turn an interaction log into a dataset directory",
        description="Read a click or rating log (CSV, TSV, Parquet, NDJSON, gzip, or a folder of parts), "
        "clean, aggregate, filter and split it, and write a dataset directory.",
    )
    parser.add_argument("input", type=Path, help="log file or folder of log files")
    parser.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_ingest_options(parser)
    parser.set_defaults(handler=_handle)
