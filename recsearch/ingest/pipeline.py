"""The ingestion stage: a raw interaction log in, a dataset directory out."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from recsearch import __version__
from recsearch.data import layout
from recsearch.errors import InputError
from recsearch.ingest import clean, tables
from recsearch.ingest.aggregate import aggregate_pairs, drop_duplicate_events, event_mix
from recsearch.ingest.config import IngestConfig
from recsearch.ingest.kcore import kcore_filter
from recsearch.ingest.presets import get_preset
from recsearch.ingest.report import IngestReport
from recsearch.ingest.sources import RaggedLine, find_ragged_line, prepare_sources, sha256_of
from recsearch.ingest.split import SplitResult, leave_last_out, random_split, temporal
from recsearch.ingest.timestamps import check_timezone, inspect_time_column
from recsearch.ingest.vocab import build_vocabulary
from recsearch.ingest.writer import check_output, staged_directory, write_json, write_parquet

logger = logging.getLogger(__name__)

StageCallback = Callable[[str], None]
STAGES = ("read", "clean", "aggregate", "filter", "encode", "split", "write")


@dataclass(frozen=True)
class IngestResult:
    """Output of ingestion: the dataset directory, its manifest and the report."""

    out: Path
    manifest: dict[str, Any]
    report: IngestReport
    seconds: float


def _collect(frame: pl.LazyFrame, what: str, log: tables.LogTable | None = None) -> pl.DataFrame:
    try:
        return frame.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise _read_error(exc, what, log) from exc


def _read_error(
    exc: pl.exceptions.PolarsError, what: str, log: tables.LogTable | None
) -> InputError:
    """Return an InputError for Polars's error about malformed input, naming the options to check."""
    # Polars names the file and the byte offset for malformed text; pass that on.
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "invalid utf-8" in first_line.lower():
        return InputError(
            f"{what} is not valid UTF-8 text ({first_line}); convert it first, for example "
            "`iconv -f latin1 -t utf-8 IN > OUT` for a Latin-1 file"
        )
    ragged = _ragged_line(log) if log is not None and "fields" in first_line else None
    if ragged is not None:
        first_line = (
            f"{ragged.path}, line {ragged.line} has {ragged.n_fields} fields where line {ragged.first_line} "
            f"has {ragged.expected} ({first_line})"
        )
    return InputError(
        f"failed to read {what}: {first_line}. Check the separator (--separator), quoting "
        "(--quote-char) and column names (--columns)"
    )


def _ragged_line(log: tables.LogTable) -> RaggedLine | None:
    """Return the first line of the log's text files with more fields than its file's first line."""
    # A header-less file's first line was checked against --columns when it was opened.
    for source, facts in zip(log.sources, log.facts):
        if source.format not in ("csv", "tsv"):
            continue
        ragged = find_ragged_line(source, facts["separator"], facts["quote_char"])
        if ragged is not None:
            return ragged
    return None


def _raise_for_bad_rows(bad: pl.DataFrame, log: tables.LogTable, config: IngestConfig) -> None:
    counts = bad.group_by(clean.REASON).len().sort("len", descending=True)
    summary = ", ".join(f"{reason}: {n}" for reason, n in counts.iter_rows())
    first = bad.sort(clean.FILE_COLUMN, clean.ROW_COLUMN).row(0, named=True)
    reason = first[clean.REASON]
    canonical = clean.REASON_COLUMN[reason]
    column = log.columns.source_of(canonical)
    raw = first.get(clean.RAW_PREFIX + canonical, first.get(canonical))
    raise InputError(
        f"{log.location(first)}, column {column!r}: {tables.describe_reason(reason)} (value {raw!r}). "
        f"{bad.height} bad rows in all ({summary}). Fix the input, or pass --on-bad-rows drop to skip "
        "and count them, or --on-bad-rows quarantine to write them to quarantine.parquet"
    )


def _raise_for_unknown_events(unknown: pl.DataFrame, log: tables.LogTable, known: list[str]) -> None:
    counts = unknown.group_by(clean.EVENT).len().sort("len", descending=True)
    listed = ", ".join(f"{name!r} ({n} rows)" for name, n in counts.head(10).iter_rows())
    first = unknown.sort(clean.FILE_COLUMN, clean.ROW_COLUMN).row(0, named=True)
    raise InputError(
        f"unknown event types {listed}, first at {log.location(first)}; --event-weights knows "
        f"{', '.join(known)}. Add them to --event-weights, or pass --unknown-events drop to skip and count them"
    )


def _split(config: IngestConfig, events: pl.DataFrame, pairs: pl.DataFrame, has_time: bool) -> SplitResult:
    kind = config.split or ("leave-last-out" if has_time else "random")
    if kind != "random" and not has_time:
        raise InputError(
            f"the {kind} split needs timestamps and this log has none; use --split random "
            "(or name the time column with --time-col)"
        )
    if kind == "leave-last-out":
        return leave_last_out(events, pairs)
    if kind == "temporal":
        return temporal(events, config.test_fraction, config.validation_fraction, config.test_cut, config.validation_cut)
    return random_split(pairs, config.test_fraction, config.validation_fraction, config.seed)


def _warn_empty_splits(split: SplitResult, report: IngestReport) -> None:
    """Record a warning for each held-out split that ended up empty; training can still run."""
    for name in ("validation", "test"):
        if getattr(split, name).height == 0:
            dropped = {k: n for k, n in split.dropped_pairs.items() if k.startswith(name) and n}
            message = f"the {name} split is empty"
            if dropped:
                message += f" ({', '.join(f'{k}: {n}' for k, n in dropped.items())} pairs dropped)"
            report.warnings.append(message)
            logger.warning("%s", message)


def ingest(config: IngestConfig, on_stage: StageCallback | None = None) -> IngestResult:
    """Read, clean, aggregate, filter, encode and split a log into ``config.out``."""
    started = time.perf_counter()
    stage = on_stage or (lambda name: None)
    preset = get_preset(config.preset)
    check_output(config.out, config.overwrite)
    check_timezone(config.timezone)
    report = IngestReport()

    with staged_directory(config.out, config.overwrite) as staging:
        paths = layout.DatasetPaths(staging)

        stage("read")
        sources = prepare_sources(config.input, config.format, staging / "_work")
        log = tables.open_log(sources, config, preset)

        stage("clean")
        time_format = None
        if log.columns.time is not None:
            try:
                time_format = inspect_time_column(log.frame, log.columns.time, config.time_unit or preset.time_unit)
            except pl.exceptions.PolarsError as exc:  # the first read of the data: malformed text shows here
                raise _read_error(exc, f"{config.input}", log) from exc
            report.time_format = {"column": log.columns.time, "kind": time_format.kind, "unit": time_format.unit,
                                  "unit_detected": time_format.detected, "timezone_of_naive_times": config.timezone}
        event_weights = log.event_weights
        options = clean.CleanOptions(
            time_format=time_format,
            timezone=config.timezone,
            event_weights=event_weights,
            drop_unknown_events=config.unknown_events == "drop",
            min_rating=config.min_rating,
        )
        events = _collect(clean.canonical_frame(log.frame, log.columns, options), f"{config.input}", log)
        has_time = log.columns.time is not None
        per_file = events.group_by(clean.FILE_COLUMN).len()
        counts = dict(per_file.iter_rows())
        report.rows_per_file = {str(s.path): int(counts.get(i, 0)) for i, s in enumerate(sources)}
        report.rows_read = events.height
        if report.rows_read == 0:
            raise InputError(f"input {config.input} contains no data rows")

        reasons = events[clean.REASON]
        bad = events.filter(reasons.is_in(clean.BAD_ROW_REASONS))
        if bad.height and config.on_bad_rows == "error":
            _raise_for_bad_rows(bad, log, config)
        if bad.height and config.on_bad_rows == "quarantine":
            write_parquet(tables.quarantine_rows(bad, log), paths.quarantine)
            report.quarantined_rows = bad.height
        unknown = events.filter(reasons == clean.UNKNOWN_EVENT)
        if unknown.height and config.unknown_events == "error":
            _raise_for_unknown_events(unknown, log, list(event_weights or {}))
        del bad, unknown

        dropped = events.filter(reasons.is_not_null()).group_by(clean.REASON).len()
        report.dropped_rows = {str(r): int(n) for r, n in dropped.sort(clean.REASON).iter_rows()}
        # Only the parsed columns go on: raw text and row positions were for error reports.
        bookkeeping = [c for c in events.columns if c.startswith("_")]
        good = events.filter(reasons.is_null()).drop(bookkeeping)
        del events, reasons
        if good.height == 0:
            raise InputError(
                f"no usable row is left in {config.input}: all {report.rows_read} rows were dropped "
                f"({', '.join(f'{r}: {n}' for r, n in report.dropped_rows.items())})"
            )

        if config.dedupe and has_time:
            key = [c for c in (clean.USER, clean.ITEM, clean.TIME, clean.EVENT, clean.WEIGHT, clean.SESSION)
                   if c in good.columns]
            good, duplicates = drop_duplicate_events(good, key)
            if duplicates:
                report.dropped_rows["duplicate_event"] = duplicates
        report.events_valid = good.height
        report.event_mix = event_mix(good)

        stage("aggregate")
        pairs = aggregate_pairs(good, has_time, keys=(clean.USER, clean.ITEM))
        report.pairs = pairs.height
        report.events_merged = good.height - pairs.height

        stage("filter")
        core = kcore_filter(pairs, config.min_user_interactions, config.min_item_interactions,
                            keys=(clean.USER, clean.ITEM))
        report.kcore = {
            "min_user_interactions": config.min_user_interactions,
            "min_item_interactions": config.min_item_interactions,
            "iterations": core.iterations,
            "pairs_removed": core.pairs_removed,
            "events_removed": core.events_removed,
            "users_removed": core.users_removed,
            "items_removed": core.items_removed,
        }
        if core.pairs.height == 0:
            raise InputError(
                f"k-core filtering left no interaction: no subset of the {pairs.height} (user, item) pairs has "
                f"every user with >= {config.min_user_interactions} items (--min-user-interactions) and every "
                f"item with >= {config.min_item_interactions} users (--min-item-interactions); lower them"
            )

        stage("encode")
        users = build_vocabulary(core.pairs, clean.USER, layout.USER_INDEX)
        items = build_vocabulary(core.pairs, clean.ITEM, layout.ITEM_INDEX)
        interactions = (
            core.pairs.join(users.select(clean.USER, layout.USER_INDEX), on=clean.USER)
            .join(items.select(clean.ITEM, layout.ITEM_INDEX), on=clean.ITEM)
            .select(layout.INTERACTION_COLUMNS)
            .sort(layout.USER_INDEX, layout.ITEM_INDEX)
        )
        encoded_events = good.join(users.select(clean.USER, layout.USER_INDEX), on=clean.USER).join(
            items.select(clean.ITEM, layout.ITEM_INDEX), on=clean.ITEM
        )
        report.interactions = interactions.height
        report.events_in_interactions = int(interactions[layout.N_EVENTS].sum())
        report.n_users, report.n_items = users.height, items.height
        if has_time:
            report.time_range = {"min": good[clean.TIME].min().isoformat(), "max": good[clean.TIME].max().isoformat()}

        item_features = tables.entity_features("item", items, good, config, log, has_time, report)
        user_features = tables.entity_features("user", users, good, config, log, has_time, report)
        del good

        stage("split")
        split = _split(config, encoded_events, interactions, has_time)
        del encoded_events
        report.split = split.settings
        report.split_counts = {name: getattr(split, name).height for name in layout.SPLIT_NAMES}
        report.dropped_split_pairs = split.dropped_pairs
        report.dropped_split_events = split.dropped_events
        if split.train.height == 0:
            raise InputError("the split left no training pairs; use a smaller --test-fraction / --validation-fraction")
        _warn_empty_splits(split, report)
        report.check_accounting()

        stage("write")
        write_parquet(interactions, paths.interactions)
        for name in layout.SPLIT_NAMES:
            write_parquet(getattr(split, name), paths.split(name))
        write_parquet(
            users.rename({clean.USER: layout.USER_ID})
            .with_columns(pl.col(layout.USER_ID).cast(pl.String))
            .join(user_features.table, on=layout.USER_INDEX, how="left"),
            paths.users,
        )
        write_parquet(
            items.rename({clean.ITEM: layout.ITEM_ID})
            .with_columns(pl.col(layout.ITEM_ID).cast(pl.String))
            .join(item_features.table, on=layout.ITEM_INDEX, how="left"),
            paths.items,
        )
        for entity, features in (("item", item_features), ("user", user_features)):
            for name, vocabulary in features.vocabularies.items():
                write_parquet(vocabulary, paths.feature_vocabulary(entity, name))

        source_files = [{"path": str(s.path), "bytes": s.path.stat().st_size, "sha256": sha256_of(s.path)}
                        for s in sources]
        manifest = _manifest(config, report, log, source_files, item_features, user_features, has_time)
        write_json(report.to_json(), paths.report)
        write_json(manifest, paths.manifest)
        work = staging / "_work"
        if work.exists():
            for leftover in sorted(work.rglob("*"), reverse=True):
                leftover.unlink() if leftover.is_file() else leftover.rmdir()
            work.rmdir()

    seconds = time.perf_counter() - started
    logger.info("ingested %d rows into %s in %.1f s", report.rows_read, config.out, seconds)
    return IngestResult(out=config.out, manifest=manifest, report=report, seconds=seconds)


def _manifest(config, report, log, source_files, item_features, user_features, has_time) -> dict[str, Any]:
    fingerprint = hashlib.sha256(
        json.dumps({"sources": [f["sha256"] for f in source_files], "config": config.to_json()},
                   sort_keys=True, default=str).encode()
    ).hexdigest()
    return {
        "format": layout.DATASET_FORMAT,
        "format_version": layout.DATASET_FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recsearch_version": __version__,
        "fingerprint": fingerprint,
        "n_users": report.n_users,
        "n_items": report.n_items,
        "n_interactions": report.interactions,
        "n_events": report.events_in_interactions,
        "has_timestamps": has_time,
        "time_range": report.time_range,
        "split": {**report.split, "counts": report.split_counts,
                  "available": list(("leave-last-out", "temporal", "random") if has_time else ("random",))},
        "columns": log.column_roles(),
        "event_weights": log.event_weights,
        "features": {
            "item": {name: s.to_json() for name, s in item_features.stats.items()},
            "user": {name: s.to_json() for name, s in user_features.stats.items()},
        },
        "sources": source_files,
        "ingest_config": config.to_json(),
    }
