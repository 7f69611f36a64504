from __future__ import annotations

import gzip

import polars as pl
import pytest

from recsearch.datasets import write_clicklog
from recsearch.errors import InputError

from .conftest import interactions, run, write_text


@pytest.mark.parametrize(
    "name",
    ["log.csv", "log.tsv", "log.parquet", "log.ndjson", "log.jsonl", "log.csv.gz", "log.tsv.gz", "log.ndjson.gz"],
)
def test_format_gives_same_dataset(tmp_path, small_log, name):
    reference = run(tmp_path / "ref", write_clicklog(small_log, tmp_path / "ref.parquet"), event_col="event")
    result = run(tmp_path / "out", write_clicklog(small_log, tmp_path / name), event_col="event")

    assert result.report.rows_read == small_log.height
    assert result.manifest["n_users"] == reference.manifest["n_users"]
    assert result.manifest["n_items"] == reference.manifest["n_items"]
    expected = interactions(reference).sort("user_id", "item_id").select("user_id", "item_id", "weight", "n_events")
    actual = interactions(result).sort("user_id", "item_id").select("user_id", "item_id", "weight", "n_events")
    assert actual.equals(expected)


def test_folder_of_parts_reads_every_part(tmp_path, small_log):
    parts = tmp_path / "parts"
    half = small_log.height // 2
    write_clicklog(small_log[:half], parts / "part-0.csv")
    write_clicklog(small_log[half:], parts / "part-1.csv.gz")
    result = run(tmp_path, parts)
    assert result.report.rows_read == small_log.height
    assert sorted(result.report.rows_per_file.values()) == sorted([half, small_log.height - half])


def test_folder_mixing_formats_rejected(tmp_path, small_log):
    write_clicklog(small_log[:10], tmp_path / "parts" / "a.csv")
    write_clicklog(small_log[10:20], tmp_path / "parts" / "b.parquet")
    with pytest.raises(InputError, match="mixes formats"):
        run(tmp_path, tmp_path / "parts")


def test_headerless_with_columns(tmp_path):
    source = write_text(tmp_path / "log.csv", "u1,i1,100\nu1,i2,200\nu2,i1,300\n")
    result = run(tmp_path, source, columns=("user", "item", "ts"), split="random")
    assert result.report.rows_read == 3
    assert result.manifest["n_users"] == 2
    assert result.manifest["has_timestamps"] is True


def test_multi_character_separator(tmp_path):
    source = write_text(tmp_path / "ratings.dat", "1::10::5::978300760\n1::20::3::978300761\n2::10::4::978300762\n")
    result = run(tmp_path, source, columns=("user_id", "item_id", "rating", "timestamp"), weight_col="rating")
    table = interactions(result).sort("user_id", "item_id")
    assert table["item_id"].to_list() == ["10", "20", "10"]
    assert table["weight"].to_list() == [5.0, 3.0, 4.0]


@pytest.mark.parametrize("separator", [";", "|", "\t"])
def test_separator_sniffed(tmp_path, separator):
    lines = ["user_id,item_id,timestamp", "a,x,1700000000", "a,y,1700000100", "b,x,1700000200"]
    source = write_text(tmp_path / "log.csv", "\n".join(line.replace(",", separator) for line in lines) + "\n")
    result = run(tmp_path, source)
    assert result.report.rows_read == 3
    assert result.manifest["n_items"] == 2


def test_quoted_fields_keep_separators(tmp_path):
    source = write_text(
        tmp_path / "log.csv",
        'user_id,item_id,category\n"a","x","shoes, red"\n"b","x","shoes, red"\n"b","y","hats"\n',
    )
    result = run(tmp_path, source, item_features=("category",), split="random")
    vocabulary = pl.read_parquet(result.out / "features" / "item.category.parquet")
    assert sorted(v for v in vocabulary["value"].to_list() if v is not None) == ["hats", "shoes, red"]


def test_unknown_suffix_needs_format(tmp_path):
    source = write_text(tmp_path / "log.unknown", "user_id,item_id\na,b\n")
    with pytest.raises(InputError, match="--format"):
        run(tmp_path, source)
    result = run(tmp_path, source, format="csv", split="random")
    assert result.report.rows_read == 1


def test_corrupt_gzip_named(tmp_path):
    source = tmp_path / "log.csv.gz"
    source.write_bytes(b"this is not gzip")
    with pytest.raises(InputError, match="log.csv.gz is not a readable gzip file"):
        run(tmp_path, source)


def test_input_file_not_modified(tmp_path, small_log):
    source = write_clicklog(small_log, tmp_path / "log.csv.gz")
    before = source.read_bytes()
    run(tmp_path, source)
    assert source.read_bytes() == before
    with gzip.open(source, "rt") as handle:
        assert handle.readline().startswith("user_id,")
