from __future__ import annotations

import polars as pl
import pytest

from recsearch.errors import InputError

from .conftest import run, write_text


def test_missing_column_lists_columns_found(tmp_path):
    source = write_text(tmp_path / "log.csv", "customer,product\na,x\n")
    with pytest.raises(InputError) as caught:
        run(tmp_path, source, user_col="customer")
    assert "no item column found; columns found: customer, product" in str(caught.value)
    assert "--item-col" in str(caught.value)


def test_misspelt_explicit_column(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n")
    with pytest.raises(InputError, match="--time-col 'ts' is not a column of the input; columns found: user_id, item_id"):
        run(tmp_path, source, time_col="ts")


def test_headerless_file_hint(tmp_path):
    source = write_text(tmp_path / "log.csv", "1,2268318,2520377,pv,1511544070\n")
    with pytest.raises(InputError, match="looks like data, not a header: name the columns with --columns"):
        run(tmp_path, source)


def test_quarantine_writes_bad_rows(tmp_path):
    source = write_text(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp\na,x,1700000000\n,y,1700000001\nb,z,not-a-time\nc,x,1700000002\n",
    )
    result = run(tmp_path, source, on_bad_rows="quarantine", split="random")
    assert result.report.quarantined_rows == 2
    assert result.report.dropped_rows == {"null_user_id": 1, "unparseable_timestamp": 1}
    quarantine = pl.read_parquet(result.out / "quarantine.parquet").sort("line")
    assert quarantine["line"].to_list() == [3, 4]
    assert quarantine["reason"].to_list() == ["null_user_id", "unparseable_timestamp"]
    assert quarantine["time"].to_list() == ["1700000001", "not-a-time"]
    assert quarantine["file"].to_list() == [str(source)] * 2


def test_drop_policy_writes_no_quarantine(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n,y\n")
    result = run(tmp_path, source, on_bad_rows="drop")
    assert result.report.dropped_rows == {"null_user_id": 1}
    assert not (result.out / "quarantine.parquet").exists()


def test_all_rows_dropped_says_why(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,event\na,x,click\nb,y,click\n")
    with pytest.raises(InputError, match=r"all 2 rows were dropped \(unknown_event: 2\)"):
        run(tmp_path, source, event_weights={"view": 1}, unknown_events="drop")


def test_kcore_emptying_names_filters(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\nb,y\n")
    with pytest.raises(InputError, match="--min-user-interactions.*--min-item-interactions"):
        run(tmp_path, source, min_user_interactions=2)


def test_output_exists_without_overwrite(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n")
    (tmp_path / "dataset").mkdir()
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        run(tmp_path, source)


def test_failed_run_leaves_nothing_behind(tmp_path):
    good = write_text(tmp_path / "good.csv", "user_id,item_id\na,x\nb,x\n")
    first = run(tmp_path, good)
    before = sorted(p.name for p in first.out.iterdir())
    bad = write_text(tmp_path / "bad.csv", "user_id,item_id,timestamp\na,x,never\n")
    with pytest.raises(InputError):
        run(tmp_path, bad, overwrite=True)
    assert sorted(p.name for p in first.out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_replaces_dataset(tmp_path):
    first = write_text(tmp_path / "one.csv", "user_id,item_id\na,x\n")
    second = write_text(tmp_path / "two.csv", "user_id,item_id\na,x\nb,y\nc,z\n")
    run(tmp_path, first)
    result = run(tmp_path, second, overwrite=True)
    assert result.manifest["n_users"] == 3


def test_ragged_text_line_named(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\nb,y,extra,fields\n")
    with pytest.raises(InputError, match="failed to read"):
        run(tmp_path, source)


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        run(tmp_path, tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\n")
    with pytest.raises(InputError, match="no data rows"):
        run(tmp_path, source)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preset": "nope"}, "invalid --preset 'nope'"),
        ({"split": "yearly"}, "invalid --split 'yearly'"),
        ({"min_user_interactions": 0}, "--min-user-interactions must be at least 1, got 0"),
        ({"test_fraction": 0.6, "validation_fraction": 0.5}, "must stay below 1"),
        ({"on_bad_rows": "ignore"}, "invalid --on-bad-rows 'ignore'"),
    ],
)
def test_config_validation(tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        run(tmp_path, tmp_path / "log.csv", **options)
