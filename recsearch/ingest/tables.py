"""The opened log (files, mapped columns, event weights) and the user/item attribute tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from recsearch.data import layout
from recsearch.errors import InputError
from recsearch.ingest import clean
from recsearch.ingest.config import IngestConfig
from recsearch.ingest.presets import Preset, headerless_columns, resolve_column
from recsearch.ingest.report import IngestReport
from recsearch.ingest.sources import (
    EMPTY_COLUMN,
    FILE_COLUMN,
    ROW_COLUMN,
    SourceFile,
    TextOptions,
    prepare_sources,
    record_start_lines,
    scan_source,
)
from recsearch.ingest.vocab import EntityFeatures, encode_features, latest_values

_REASON_TEXT = {
    clean.NULL_USER: "the user id is empty",
    clean.NULL_ITEM: "the item id is empty",
    clean.MISSING_TIME: "the timestamp is empty",
    clean.BAD_TIME: "the timestamp cannot be parsed as epoch seconds/ms/us/ns or ISO-8601",
    clean.TIME_RANGE: "the timestamp falls outside 1970..2100 (wrong --time-unit, or mixed units?)",
    clean.BAD_WEIGHT: "the weight is not a finite number",
}


def describe_reason(reason: str) -> str:
    return _REASON_TEXT.get(reason, reason.replace("_", " "))


@dataclass
class LogTable:
    """The input log as one lazy frame with a resolved column map."""

    sources: list[SourceFile]
    facts: list[dict[str, Any]]
    frame: pl.LazyFrame
    columns: clean.ColumnMap
    event_weights: dict[str, float] | None

    def location(self, row: dict[str, Any]) -> str:
        """Name the file and line (or row, for Parquet and NDJSON) of a canonical row."""
        index = int(row[FILE_COLUMN])
        source, facts = self.sources[index], self.facts[index]
        number = int(row[ROW_COLUMN])
        if source.format in ("csv", "tsv"):
            record = number + (1 if facts["header"] else 0)
            (line,) = record_start_lines(source, facts["separator"], facts["quote_char"], np.array([record]))
            return f"{source.path}, line {line}"
        return f"{source.path}, row {number + 1}"

    def column_roles(self) -> dict[str, Any]:
        c = self.columns
        return {
            "user": c.user,
            "item": c.item,
            "time": c.time,
            "event": c.event,
            "weight": c.weight,
            "session": c.session,
            "item_features": list(c.item_features),
            "user_features": list(c.user_features),
        }


def open_log(sources: list[SourceFile], config: IngestConfig, preset: Preset) -> LogTable:
    frames, facts, available = [], [], None
    for index, source in enumerate(sources):
        columns = config.columns
        if columns is None and source.format in ("csv", "tsv"):
            columns = headerless_columns(preset, source.path.name)
        options = TextOptions(separator=config.separator, quote_char=config.quote_char, columns=columns)
        frame, file_facts = scan_source(source, index, options)
        names = [n for n in frame.collect_schema().names() if n not in (ROW_COLUMN, FILE_COLUMN, EMPTY_COLUMN)]
        if available is None:
            available = names
        elif missing := [n for n in available if n not in names]:
            raise InputError(
                f"{source.path} lacks columns {missing} that {sources[0].path} has; "
                f"columns found: {', '.join(names)}. Every part of a folder needs the same columns"
            )
        frames.append(frame)
        facts.append(file_facts)
    assert available is not None

    column_map = _resolve_columns(config, preset, available)
    needed = [ROW_COLUMN, FILE_COLUMN, EMPTY_COLUMN, *dict.fromkeys(
        c for c in (column_map.user, column_map.item, column_map.time, column_map.event, column_map.weight,
                    column_map.session, *column_map.item_features, *column_map.user_features) if c
    )]
    frame = pl.concat([f.select(needed) for f in frames], how="vertical")

    event_weights = config.event_weights
    if event_weights is None and column_map.event is not None:
        event_weights = preset.event_weights
    if event_weights is not None and column_map.event is None:
        raise InputError(
            f"--event-weights needs an event column, and none was found; columns found: {', '.join(available)}. "
            "Name it with --event-col"
        )
    if config.min_rating is not None and column_map.weight is None:
        raise InputError(
            f"--min-rating needs a rating column; columns found: {', '.join(available)}. Name it with --weight-col"
        )
    return LogTable(sources, facts, frame, column_map, event_weights)


def _resolve_columns(config: IngestConfig, preset: Preset, available: list[str]) -> clean.ColumnMap:
    user = resolve_column("user", config.user_col, preset.user_col, available, required=True)
    item = resolve_column("item", config.item_col, preset.item_col, available, required=True)
    time = None
    if not config.no_time:
        time = resolve_column("time", config.time_col, preset.time_col, available, required=False)
    event = resolve_column("event", config.event_col, preset.event_col, available, required=False)
    weight = resolve_column("weight", config.weight_col, preset.weight_col, available, required=False)
    session = resolve_column("session", config.session_col, preset.session_col, available, required=False)
    if user == item:
        raise InputError(f"the user and item columns are both {user!r}; name them with --user-col and --item-col")

    def from_log(names: tuple[str, ...], table_given: bool, option: str) -> tuple[str, ...]:
        if table_given:
            return ()
        missing = [n for n in names if n not in available]
        if missing:
            raise InputError(
                f"{option} names {missing}, which are not columns of the log; columns found: "
                f"{', '.join(available)}. Give a separate table with {option.replace('-features', 's')} FILE"
            )
        return names

    return clean.ColumnMap(
        user=user,
        item=item,
        time=time,
        event=event,
        weight=weight,
        session=session,
        item_features=from_log(config.item_features, config.items_file is not None, "--item-features"),
        user_features=from_log(config.user_features, config.users_file is not None, "--user-features"),
    )


def quarantine_rows(bad: pl.DataFrame, log: LogTable) -> pl.DataFrame:
    """Return the rejected rows with their file, line, reason and raw values, as text."""
    paths = {i: str(s.path) for i, s in enumerate(log.sources)}
    # Text files number physical lines from 1, header included; other formats count rows from 1.
    file_index = bad[FILE_COLUMN].to_numpy()
    row_numbers = bad[ROW_COLUMN].cast(pl.Int64).to_numpy()
    lines = row_numbers + 1
    for index, (source, facts) in enumerate(zip(log.sources, log.facts, strict=True)):
        rows = file_index == index
        if source.format in ("csv", "tsv") and rows.any():
            records = row_numbers[rows] + (1 if facts["header"] else 0)
            lines[rows] = record_start_lines(source, facts["separator"], facts["quote_char"], records)
    columns = [c for c in (clean.USER, clean.ITEM, clean.RAW_PREFIX + clean.TIME, clean.EVENT,
                           clean.RAW_PREFIX + clean.WEIGHT) if c in bad.columns]
    return bad.select(
        pl.col(FILE_COLUMN).replace_strict(paths, return_dtype=pl.String).alias("file"),
        pl.Series("line", lines, dtype=pl.Int64),
        pl.col(clean.REASON).alias("reason"),
        *[pl.col(c).cast(pl.String).alias(c.removeprefix(clean.RAW_PREFIX)) for c in columns],
    )


def _read_table(path, id_column: str, features: tuple[str, ...], entity: str, config: IngestConfig) -> pl.DataFrame:
    sources = prepare_sources(path, None, config.out.parent / f".{config.out.name}.{entity}-table")
    frames = []
    try:
        for index, source in enumerate(sources):
            frame, _ = scan_source(source, index, TextOptions(quote_char=config.quote_char))
            names = frame.collect_schema().names()
            missing = [n for n in (id_column, *features) if n not in names]
            if missing:
                raise InputError(
                    f"{entity} table {source.path} lacks columns {missing}; columns found: "
                    f"{', '.join(n for n in names if n not in (ROW_COLUMN, FILE_COLUMN, EMPTY_COLUMN))}. "
                    f"Name the id column with --{entity}s-id-col"
                )
            frames.append(frame.select(id_column, *features).collect())
    finally:
        for source in sources:
            if source.compressed:
                source.readable.unlink(missing_ok=True)
    return pl.concat(frames)


def entity_features(
    entity: str,
    vocabulary: pl.DataFrame,
    events: pl.DataFrame,
    config: IngestConfig,
    log: LogTable,
    has_time: bool,
    report: IngestReport,
) -> EntityFeatures:
    """Encode the categorical features of users or items, from the log or from a separate table."""
    id_column = clean.USER if entity == "user" else clean.ITEM
    index_column = layout.USER_INDEX if entity == "user" else layout.ITEM_INDEX
    names = config.user_features if entity == "user" else config.item_features
    table_path = config.users_file if entity == "user" else config.items_file
    if not names:
        return EntityFeatures(table=vocabulary.select(index_column))

    if table_path is None:
        columns = [clean.feature_column(entity, n) for n in names]
        values = latest_values(events, id_column, columns, has_time)
        features = encode_features(vocabulary, index_column, id_column, values, dict(zip(columns, names)), "log")
        return _record(report, entity, features)

    log_id = log.columns.user if entity == "user" else log.columns.item
    table_id = (config.users_id_col if entity == "user" else config.items_id_col) or log_id
    table = _read_table(table_path, table_id, names, entity, config)
    table = table.rename({table_id: id_column}).with_columns(pl.col(id_column).cast(pl.Categorical))
    rows = table.height
    table = table.unique(subset=[id_column], keep="first", maintain_order=True)
    known = table.join(vocabulary.select(id_column), on=id_column, how="semi").height
    report.tables[f"{entity}s"] = {
        "rows": rows,
        "duplicate_ids_ignored": rows - table.height,
        "ids_without_interactions": table.height - known,
        f"{entity}s_missing_from_table": vocabulary.height - known,
    }
    features = encode_features(vocabulary, index_column, id_column, table, {n: n for n in names}, str(table_path))
    return _record(report, entity, features)


def _record(report: IngestReport, entity: str, features: EntityFeatures) -> EntityFeatures:
    for name, stats in features.stats.items():
        report.features[f"{entity}.{name}"] = stats.to_json()
    return features
