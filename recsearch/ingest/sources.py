"""Find the input files of a log, tell their format and scan them lazily with Polars.

Every column is read as text first, so ids keep their exact spelling (leading zeros,
UUIDs, unicode) and each value is parsed later by code that can name the row that failed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recsearch.errors import InputError

logger = logging.getLogger(__name__)

FORMATS = ("csv", "tsv", "parquet", "ndjson")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".data": "csv",  # MovieLens u.data: the separator is sniffed
    ".dat": "csv",  # MovieLens ratings.dat: "::" is sniffed
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
}
# Multi-character separators come first so "::" wins over ":".
_SEPARATOR_CANDIDATES = ("::", "\t", ",", ";", "|")
ROW_COLUMN = "_row"
FILE_COLUMN = "_file"
EMPTY_COLUMN = "_empty"  # true where every field of the row is empty, as on a blank line


@dataclass(frozen=True)
class SourceFile:
    """One input file: where it is, its format, and the readable copy used for scanning."""

    path: Path  # as given by the user, never modified
    format: str
    compressed: bool
    readable: Path  # the file itself, or its decompressed copy in the work directory

    @property
    def display_name(self) -> str:
        return str(self.path)


def detect_format(path: Path, forced: str | None = None) -> tuple[str, bool]:
    """Return (format, gzip-compressed) for a file from its name, or the forced format."""
    name = path.name.lower()
    compressed = name.endswith((".gz", ".gzip"))
    if compressed:
        name = name.rsplit(".", 1)[0]
    if forced is not None:
        if forced not in FORMATS:
            raise InputError(f"unknown --format {forced!r}; expected one of {', '.join(FORMATS)}")
        return forced, compressed
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if suffix not in _SUFFIX_FORMATS:
        raise InputError(
            f"cannot tell the format of {path}: its name does not end in "
            f"{', '.join(sorted(_SUFFIX_FORMATS))} (optionally + .gz); pass --format {{{','.join(FORMATS)}}}"
        )
    return _SUFFIX_FORMATS[suffix], compressed


def list_input_files(path: Path) -> list[Path]:
    """Return the data files at ``path``: the file itself, or the parts inside a folder."""
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_file():
        return [path]
    parts = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith((".", "_")) and p.name.lower() != "readme"
    )
    if not parts:
        raise InputError(f"input folder {path} contains no data files")
    return parts


def prepare_sources(path: Path, forced_format: str | None, work_dir: Path) -> list[SourceFile]:
    """Detect each file's format and decompress gzip files into ``work_dir`` for lazy scanning."""
    sources = []
    for file_path in list_input_files(path):
        file_format, compressed = detect_format(file_path, forced_format)
        readable = file_path
        if compressed:
            # Polars scans only uncompressed files lazily; streaming the gzip to disk keeps
            # memory flat for logs far larger than RAM.
            work_dir.mkdir(parents=True, exist_ok=True)
            readable = work_dir / f"{len(sources):05d}-{file_path.name[: -len('.gz')]}"
            try:
                with gzip.open(file_path, "rb") as source, open(readable, "wb") as sink:
                    shutil.copyfileobj(source, sink, length=1 << 22)
            except (OSError, EOFError) as exc:
                raise InputError(f"{file_path} is not a readable gzip file: {exc}") from exc
        sources.append(SourceFile(file_path, file_format, compressed, readable))

    formats = {s.format for s in sources}
    if len(formats) > 1:
        raise InputError(
            f"input folder {path} mixes formats ({', '.join(sorted(formats))}); "
            "keep one format per folder or pass a single file"
        )
    return sources


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _head_lines(path: Path, n_lines: int = 50) -> list[str]:
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    text = head.decode("utf-8", errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if len(head) == 1 << 16 and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut in the middle
    return [line for line in lines if line.strip()][:n_lines]


def leading_blank_lines(path: Path) -> int:
    """Return how many blank lines open the file (counted in its first 64 KiB)."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    lines = head.decode("utf-8", errors="replace").split("\n")
    return next((number for number, line in enumerate(lines) if line.strip()), len(lines) - 1)


def sniff_separator(path: Path, default: str) -> str:
    """Pick the separator that splits the first lines into the same number of fields."""
    lines = _head_lines(path)
    if not lines:
        return default
    for candidate in _SEPARATOR_CANDIDATES:
        counts = {line.count(candidate) for line in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return candidate
    return default


@dataclass(frozen=True)
class TextOptions:
    """Reading options of delimited text files."""

    separator: str | None = None  # None: sniffed from the first lines
    quote_char: str | None = '"'
    columns: tuple[str, ...] | None = None  # names for header-less files
    comment_prefix: str | None = None


def read_header(source: SourceFile, separator: str) -> list[str]:
    lines = _head_lines(source.readable, n_lines=1)
    if not lines:
        raise InputError(f"{source.display_name} is empty")
    return [name.strip().strip('"') for name in lines[0].lstrip("\ufeff").split(separator)]


def scan_source(source: SourceFile, index: int, options: TextOptions) -> tuple[pl.LazyFrame, dict]:
    """Scan one file lazily with every column as text, a row number and the file index.

    Returns the frame and facts for the report (separator, header, columns found).
    """
    facts: dict = {"path": str(source.path), "format": source.format, "compressed": source.compressed}
    if source.format in ("csv", "tsv", "ndjson") and not _head_lines(source.readable, n_lines=1):
        raise InputError(f"{source.display_name} is empty")
    if source.format == "parquet":
        frame = _as_text(pl.scan_parquet(source.readable))
        facts["header"] = True
    elif source.format == "ndjson":
        # Every field is read as text: a schema inferred from the first rows would fail
        # on a later row whose id is a string where the first rows had numbers.
        names = pl.scan_ndjson(source.readable, infer_schema_length=10_000).collect_schema().names()
        frame = pl.scan_ndjson(source.readable, schema={name: pl.String for name in names})
        facts["header"] = True
    else:
        frame, facts = _scan_text(source, options, facts)

    names = frame.collect_schema().names()
    frame = frame.with_row_index(ROW_COLUMN).with_columns(
        pl.lit(index, pl.UInt16).alias(FILE_COLUMN),
        pl.all_horizontal([pl.col(name).is_null() for name in names]).alias(EMPTY_COLUMN),
    )
    return frame, facts


def _as_text(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Cast every column to text; datetimes become epoch microseconds so no zone is lost."""
    casts = []
    for name, dtype in frame.collect_schema().items():
        column = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            casts.append(column.dt.epoch("us").cast(pl.String))
        elif dtype == pl.Date:
            casts.append(column.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.String))
        elif dtype.is_float():
            # Whole floats are written as integers, so an id column that pandas stored as
            # float64 (an integer column with a missing value) gives "5", as the int column
            # of another part does, and not "5.0".
            whole = (column == column.round(0)) & (column.abs() < 2**53)
            casts.append(
                pl.when(whole).then(column.cast(pl.Int64).cast(pl.String)).otherwise(column.cast(pl.String)).alias(name)
            )
        else:
            casts.append(pl.col(name).cast(pl.String))
    return frame.with_columns(casts)


def _scan_text(source: SourceFile, options: TextOptions, facts: dict) -> tuple[pl.LazyFrame, dict]:
    default = "\t" if source.format == "tsv" else ","
    separator = options.separator or sniff_separator(source.readable, default)
    separator = separator.encode().decode("unicode_escape") if separator == "\\t" else separator
    has_header = options.columns is None
    facts.update(separator=separator, header=has_header, quote_char=options.quote_char)
    if options.columns is not None:
        _check_field_count(source, separator, options.quote_char, options.columns)

    if len(separator) == 1:
        frame = pl.scan_csv(
            source.readable,
            separator=separator,
            has_header=has_header,
            new_columns=list(options.columns) if options.columns else None,
            infer_schema=False,
            quote_char=options.quote_char,
            comment_prefix=options.comment_prefix,
            missing_columns="insert",
            truncate_ragged_lines=False,
        )
        if has_header:
            frame = _clean_header(frame, source)
        return frame, facts

    # Polars needs a one-byte separator: read whole lines and split them ourselves.
    names = list(options.columns) if options.columns else read_header(source, separator)
    _check_unique_names(names, source)
    frame = pl.scan_csv(
        source.readable,
        separator="\x1f",
        has_header=False,
        new_columns=["_line"],
        infer_schema=False,
        quote_char=None,
        skip_rows=leading_blank_lines(source.readable) + (0 if options.columns else 1),
    )
    # splitn leaves any extra fields, separators included, in the last column, so a
    # line with too many fields fails to parse there instead of losing its tail.
    frame = frame.select(
        pl.col("_line").str.splitn(separator, len(names)).struct.rename_fields(names)
    ).unnest("_line")
    if options.quote_char:
        frame = frame.with_columns(_unquote(pl.col(name), options.quote_char) for name in names)
    return frame, facts


def _unquote(field: pl.Expr, quote: str) -> pl.Expr:
    """Strip one pair of enclosing quotes from a field split by hand, and undouble the quotes inside.

    NOTE: a multi-character separator inside a quoted field still splits it.
    """
    quoted = field.str.starts_with(quote) & field.str.ends_with(quote) & (field.str.len_chars() >= 2)
    inner = field.str.slice(1, field.str.len_chars() - 2).str.replace_all(quote * 2, quote, literal=True)
    return pl.when(quoted).then(inner).otherwise(field)


@dataclass(frozen=True)
class RaggedLine:
    """The first line of a delimited file with more fields than its first record."""

    path: Path
    line: int  # 1-based physical line, quoted newlines counted
    n_fields: int
    first_line: int  # where the first record (the header, if any) starts
    expected: int  # the first record's field count


# The functions below re-read a text file with the csv module, one record at a time: a
# per-row Python loop, so only error and quarantine paths call them, and they stop as early
# as they can. They follow Polars in skipping blank lines before the first record and
# counting later blank lines as records.
_FIELD_LIMIT = 2**31 - 1  # the csv module's default of 131,072 characters rejects long fields


def _records(source: SourceFile, separator: str, quote_char: str | None) -> Iterator[tuple[int, list[str], int]]:
    """Yield (record index, fields, 1-based start line) for each record of a text file.

    Raises csv.Error on a record the csv module cannot parse.
    """
    csv.field_size_limit(_FIELD_LIMIT)
    quoting = {"quotechar": quote_char} if quote_char else {"quoting": csv.QUOTE_NONE}
    with source.readable.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=separator, **quoting)
        index, start, started = 0, 1, False
        for fields in reader:
            if fields or started:
                started = True
                yield index, fields, start
                index += 1
            start = reader.line_num + 1


def find_ragged_line(source: SourceFile, separator: str, quote_char: str | None) -> RaggedLine | None:
    """Return the first record of ``source`` with more fields than the first record, or None.

    Shorter records are left out: the reader fills their missing fields with nulls.
    """
    if len(separator) != 1:
        return None
    first_line = expected = None
    try:
        for _, fields, line in _records(source, separator, quote_char):
            if expected is None:
                first_line, expected = line, len(fields)
            elif len(fields) > expected:
                return RaggedLine(source.path, line, len(fields), first_line, expected)
    except csv.Error:
        return None  # the caller reports Polars's own message
    return None


def record_start_lines(source: SourceFile, separator: str, quote_char: str | None, records: np.ndarray) -> np.ndarray:
    """Return the 1-based physical line where each record starts: ``records`` are 0-based, header included.

    Lines and records differ after a quoted field that contains a newline and after blank
    lines before the first record. When the file has neither, the line is the record plus
    one, computed without reading the file record by record.
    """
    records = np.asarray(records, dtype=np.int64)
    simple = records + 1
    if records.size == 0:
        return simple
    if len(separator) != 1:  # read line by line, after the blank lines that open the file
        return simple + leading_blank_lines(source.readable)
    if not _may_span_lines(source.readable, quote_char):
        return simple
    # NOTE: a file that quotes its fields is read up to its last quarantined record even
    # without a newline inside quotes: about 1.2 s per million records here.
    requested = set(records.tolist())
    last = int(records.max())
    found: dict[int, int] = {}
    try:
        for index, _, line in _records(source, separator, quote_char):
            if index in requested:
                found[index] = line
            if index >= last:
                break
    except csv.Error:
        return simple
    return np.array([found.get(record, record + 1) for record in records.tolist()], dtype=np.int64)


def _first_record_width(source: SourceFile, separator: str, quote_char: str) -> int | None:
    """Return the field count of the first record of ``source``, or None when it cannot be parsed."""
    try:
        for _, fields, _ in _records(source, separator, quote_char):
            return len(fields)
    except csv.Error:
        return None
    return None


def _may_span_lines(path: Path, quote_char: str | None, chunk: int = 1 << 24) -> bool:
    """Return whether ``path`` starts with a blank line or contains the quote character."""
    quote = quote_char.encode() if quote_char else None
    with path.open("rb") as handle:
        head = handle.read(chunk)
        if head[:1] in (b"\n", b"\r"):
            return True
        while head:
            if quote is not None and quote in head:
                return True
            head = handle.read(chunk)
    return False


def _count_fields(line: str, separator: str, quote_char: str | None) -> int:
    if len(separator) > 1:
        return line.count(separator) + 1
    if quote_char is None:
        return len(line.split(separator))
    return len(next(csv.reader([line], delimiter=separator, quotechar=quote_char)))


def _check_field_count(source: SourceFile, separator: str, quote_char: str | None, columns: tuple[str, ...]) -> None:
    """Reject --columns whose count differs from the fields of the first line."""
    lines = _head_lines(source.readable, n_lines=1)
    if not lines:
        return
    first = lines[0].lstrip("\ufeff")
    n_fields = _count_fields(first, separator, quote_char)
    if n_fields != len(columns) and len(separator) == 1 and quote_char:
        # A quoted field may contain a newline, so the first record can be longer than line 1.
        n_fields = _first_record_width(source, separator, quote_char) or n_fields
    if n_fields != len(columns):
        raise InputError(
            f"--columns names {len(columns)} columns, but line 1 of {source.display_name} has {n_fields} "
            f"fields ({first[:80]!r}, separator {separator!r}); give one name per field"
        )


def _check_unique_names(names: list[str], source: SourceFile) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(
                f"the header of {source.display_name} repeats the column name {name!r}; rename one of "
                "them, or pass --columns with a name for every field"
            )
        seen.add(name)


def _clean_header(frame: pl.LazyFrame, source: SourceFile) -> pl.LazyFrame:
    """Strip spaces around header names and reject repeated names.

    Polars renames a repeated name ``x`` to ``x_duplicated_0``; that rename is undone
    here so the repetition is reported instead of silently reading the first column.
    """
    names = frame.collect_schema().names()
    original = []
    for name in names:
        base = re.sub(r"_duplicated_\d+$", "", name)
        original.append(base if base != name and base in names else name)
    stripped = [name.strip() for name in original]
    _check_unique_names(stripped, source)
    if stripped != names:
        frame = frame.rename(dict(zip(names, stripped, strict=True)))
    return frame
