"""Faults found by feeding ingestion messy, hand-written logs."""

from __future__ import annotations

import gzip

import polars as pl
import pytest

from recsearch.errors import InputError

from .conftest import run, write_text


def test_empty_csv_named(tmp_path):
    source = write_text(tmp_path / "log.csv", "")
    with pytest.raises(InputError, match=f"{source} is empty"):
        run(tmp_path, source)


def test_gzip_of_empty_file_named(tmp_path):
    source = tmp_path / "log.csv.gz"
    with gzip.open(source, "wb"):
        pass
    with pytest.raises(InputError, match=f"{source} is empty"):
        run(tmp_path, source)


def test_columns_fewer_than_fields(tmp_path):
    source = write_text(tmp_path / "log.csv", "a,x,1700000000,4\nb,y,1700000001,5\n")
    with pytest.raises(InputError, match="--columns names 3 columns, but line 1 of .* has 4 fields"):
        run(tmp_path, source, columns=("user_id", "item_id", "timestamp"))


def test_columns_more_than_fields(tmp_path):
    source = write_text(tmp_path / "log.csv", "a,x\nb,y\n")
    with pytest.raises(InputError, match="--columns names 3 columns, but line 1 of .* has 2 fields"):
        run(tmp_path, source, columns=("user_id", "item_id", "timestamp"))


def test_multichar_columns_mismatch(tmp_path):
    # ratings.dat layout (user::movie::rating::time) named with three columns: the
    # rating must not be read as the timestamp.
    source = write_text(tmp_path / "ratings.dat", "1::10::5::978300760\n2::11::3::978300761\n")
    with pytest.raises(InputError, match="--columns names 3 columns, but line 1 of .* has 4 fields"):
        run(tmp_path, source, columns=("user_id", "item_id", "timestamp"))


def test_multichar_extra_field_not_dropped(tmp_path):
    source = write_text(
        tmp_path / "log.dat",
        "user_id::item_id::timestamp\na::x::1700000000\nb::y::1700000001::9\n",
    )
    with pytest.raises(InputError, match=r"line 3, column 'timestamp'.*'1700000001::9'"):
        run(tmp_path, source, separator="::")


def test_header_names_with_spaces(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id, item_id, timestamp\na,x,1700000000\nb,y,1700000001\n")
    result = run(tmp_path, source)
    assert result.report.interactions == 2
    assert result.manifest["columns"]["time"] == "timestamp"


def test_items_table_header_spaces(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n")
    table = write_text(tmp_path / "items.csv", "item_id, category\nx,c1\n")
    result = run(tmp_path, source, items_file=table, item_features=("category",))
    assert result.report.features["item.category"]["cardinality"] == 2


def test_duplicate_header_rejected(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,item_id\na,x,y\nb,y,z\n")
    with pytest.raises(InputError, match="repeats the column name 'item_id'"):
        run(tmp_path, source)


def test_trailing_blank_lines_counted(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n\nb,y\n\n\n")
    result = run(tmp_path, source)
    assert result.report.rows_read == 5
    assert result.report.dropped_rows == {"empty_row": 3}
    assert result.report.interactions == 2


def test_latin1_error_suggests_utf8(tmp_path):
    source = tmp_path / "log.csv"
    source.write_bytes("user_id,item_id\nJos\xe9,x\n".encode("latin-1"))
    with pytest.raises(InputError, match=f"{source} is not valid UTF-8.*iconv"):
        run(tmp_path, source)


def test_ndjson_late_string_id(tmp_path):
    lines = [f'{{"user_id": {n}, "item_id": {n}}}' for n in range(10_005)]
    lines.append('{"user_id": "u-x", "item_id": "i-x"}')
    source = write_text(tmp_path / "log.ndjson", "\n".join(lines) + "\n")
    result = run(tmp_path, source)
    assert result.report.rows_read == 10_006
    assert "u-x" in pl.read_parquet(result.out / "users.parquet")["user_id"].to_list()


def test_parquet_float_ids_match_int_ids(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pl.DataFrame({"user_id": [1, 2], "item_id": [5, 6]}).write_parquet(folder / "a.parquet")
    # pandas stores an integer column with a missing value as float64.
    pl.DataFrame({"user_id": [3, 4], "item_id": [5.0, None]}).write_parquet(folder / "b.parquet")
    result = run(tmp_path, folder, on_bad_rows="drop")
    items = pl.read_parquet(result.out / "items.parquet")
    assert sorted(items["item_id"].to_list()) == ["5", "6"]
    assert result.report.dropped_rows == {"null_item_id": 1}


def test_weight_beyond_float32(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,rating\na,x,1e39\nb,y,1\n")
    with pytest.raises(InputError, match=r"line 2, column 'rating'.*'1e39'"):
        run(tmp_path, source, weight_col="rating")


def test_empty_test_split_warned(tmp_path):
    rows = "".join(f"u{u},i{i},{1_700_000_000 + 10 * u + i}\n" for u in range(3) for i in range(3))
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\n" + rows)
    result = run(tmp_path, source, split="temporal", test_cut="2030-01-01")
    assert result.report.split_counts["test"] == 0
    assert any("test split is empty" in w for w in result.report.warnings)


# Longer than the csv module's default field limit of 131,072 characters.
LONG_FIELD = "z" * 200_000


# Errors name the physical line where the record starts; the file's name comes first.
ERROR_LINES = {
    "value-after-quoted-newline": (
        "log.csv", 'user_id,item_id,timestamp\na,"x\ny",1700000000\nb,y,never\n', "log.csv, line 4,"),
    "value-after-quoted-newline-and-blank-line": (
        "log.csv", 'user_id,item_id,timestamp\na,"x\ny",1700000000\n\nb,y,never\n', "log.csv, line 5,"),
    "value-after-blank-lines": (
        "log.csv", "\n\nuser_id,item_id,timestamp\na,x,1700000000\nb,y,nope\n", "log.csv, line 5,"),
    "value-after-long-field": (
        "log.csv", f'user_id,item_id,timestamp\na,"{LONG_FIELD}",1700000000\nb,y,nope\n', "log.csv, line 3,"),
    "ragged": (
        "log.csv", "user_id,item_id\na,x\nb,y,extra\n", "log.csv, line 3 has 3 fields where line 1 has 2"),
    # The short line 4 is read with a null item, so the error is about line 5.
    "ragged-after-quoted-newline": (
        "log.csv", 'user_id,item_id\na,"x\ny"\nb\nc,z,extra\n', "log.csv, line 5 has 3 fields"),
    "ragged-after-blank-line": (
        "log.csv", "\nuser_id,item_id,timestamp\na,x,1700000000\nb,y,1700000001,9\n",
        "log.csv, line 4 has 4 fields where line 2 has 3"),
    "ragged-after-long-field": (
        "log.csv", f'user_id,item_id,timestamp\na,"{LONG_FIELD}",1700000000\nb,y,1,9\n',
        "log.csv, line 3 has 4 fields where line 1 has 3"),
    "multichar-value-after-blank-lines": (
        "log.dat", "\n\nuser_id::item_id::timestamp\na::x::1700000000\nb::y::nope\n",
        "log.dat, line 5, column 'timestamp'"),
}


@pytest.mark.parametrize(("name", "text", "message"), ERROR_LINES.values(), ids=ERROR_LINES.keys())
def test_error_names_physical_line(tmp_path, name, text, message):
    source = write_text(tmp_path / name, text)
    with pytest.raises(InputError, match=message):
        run(tmp_path, source)


def test_quarantine_lines_count_quoted_newlines(tmp_path):
    source = write_text(
        tmp_path / "log.csv", 'user_id,item_id,timestamp\na,"x\ny",1700000000\n\nb,y,nope\nc,z,1700000002\n'
    )
    result = run(tmp_path, source, on_bad_rows="quarantine", split="random")
    quarantine = pl.read_parquet(result.out / "quarantine.parquet").filter(pl.col("reason") == "unparseable_timestamp")
    assert quarantine["line"].to_list() == [5]


def test_latin1_log_with_time_column_is_named(tmp_path):
    source = tmp_path / "log.csv"
    source.write_bytes("user_id,item_id,timestamp\nJos\xe9,x,1700000000\nb,y,1700000001\n".encode("latin-1"))
    with pytest.raises(InputError, match="not valid UTF-8 text.*iconv"):
        run(tmp_path, source)


def test_stray_quote_with_time_column_is_named(tmp_path):
    source = write_text(tmp_path / "log.csv", 'user_id,item_id,timestamp\na,x"y,1\nq",2\nb,y,3\n')
    with pytest.raises(InputError, match="failed to read .*log.csv.*--quote-char"):
        run(tmp_path, source)


def test_headerless_first_record_with_quoted_newline(tmp_path):
    source = write_text(tmp_path / "log.csv", 'a,"x\ny",1700000000\nb,y,1700000001\n')
    result = run(tmp_path, source, columns=("user_id", "item_id", "timestamp"), split="random")
    assert result.report.rows_read == 2
    assert result.report.dropped_rows == {}


def test_single_column_hints_separator(tmp_path):
    # One ragged line among the first lines defeats sniffing, so "::" is not found.
    source = write_text(tmp_path / "log.dat", "user_id::item_id::timestamp\na::x::1700000000\nb::y\n")
    with pytest.raises(InputError, match="only one column.*--separator"):
        run(tmp_path, source)


def test_multichar_quotes_removed(tmp_path):
    source = write_text(tmp_path / "log.dat", 'user_id::item_id\n"a"::"x"\n"b ""b"""::y\n')
    result = run(tmp_path, source)
    assert sorted(pl.read_parquet(result.out / "users.parquet")["user_id"].to_list()) == ["a", 'b "b"']
