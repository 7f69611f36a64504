from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from recsearch.errors import InputError

from .conftest import interactions, run, write_text

BASE = 1_700_000_000  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 1_000), ("us", 1_000_000), ("ns", 1_000_000_000)])
def test_epoch_unit_detected(tmp_path, unit, scale):
    lines = [f"a,x,{BASE * scale}", f"a,y,{(BASE + 60) * scale}", f"b,x,{(BASE + 120) * scale}"]
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\n" + "\n".join(lines) + "\n")
    result = run(tmp_path, source)
    assert result.report.time_format["unit"] == unit
    assert result.report.time_range["min"] == "2023-11-14T22:13:20+00:00"


def test_time_unit_override(tmp_path):
    # Seconds read as milliseconds, because the option overrides the detection.
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1700000000\nb,x,1700000500\n")
    result = run(tmp_path, source, time_unit="ms", on_bad_rows="drop")
    assert result.report.time_range["min"].startswith("1970-01-20")


def test_iso_strings_normalised_to_utc(tmp_path):
    source = write_text(
        tmp_path / "log.csv",
        "user_id,item_id,timestamp\n"
        "a,x,2024-03-01T10:00:00Z\n"
        "a,y,2024-03-01 12:00:00+02:00\n"
        "b,x,2024-03-01T10:00:00.250\n"
        "b,y,2024-03-02\n",
    )
    result = run(tmp_path, source, split="random")
    table = interactions(result).sort("user_id", "item_id")
    expected = [
        datetime(2024, 3, 1, 10, tzinfo=timezone.utc),
        datetime(2024, 3, 1, 10, tzinfo=timezone.utc),
        datetime(2024, 3, 1, 10, 0, 0, 250_000, tzinfo=timezone.utc),
        datetime(2024, 3, 2, tzinfo=timezone.utc),
    ]
    assert table["first_time"].to_list() == expected


def test_naive_times_take_given_zone(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,2024-01-15 12:00:00\n")
    result = run(tmp_path, source, timezone="Europe/Berlin", split="random")
    assert interactions(result)["first_time"][0] == datetime(2024, 1, 15, 11, tzinfo=timezone.utc)


def test_unknown_timezone_rejected(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id\na,x\n")
    with pytest.raises(InputError, match="Mars/Olympus"):
        run(tmp_path, source, timezone="Mars/Olympus")


def test_unparseable_timestamp_names_line_and_value(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1700000000\nb,y,yesterday\n")
    with pytest.raises(InputError) as caught:
        run(tmp_path, source)
    message = str(caught.value)
    assert "log.csv, line 3" in message
    assert "'timestamp'" in message
    assert "'yesterday'" in message
    assert "--on-bad-rows" in message


def test_mixed_units_flagged_out_of_range(tmp_path):
    lines = [f"u{i},x,{BASE + i}" for i in range(5)] + ["u9,x,1700000000000000000000"]
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\n" + "\n".join(lines) + "\n")
    result = run(tmp_path, source, on_bad_rows="drop")
    assert result.report.dropped_rows == {"timestamp_out_of_range": 1}


def test_parquet_datetime_column_keeps_zone(tmp_path):
    frame = pl.DataFrame(
        {
            "user_id": ["a", "b"],
            "item_id": ["x", "x"],
            "timestamp": [datetime(2024, 5, 1, 8, tzinfo=timezone.utc), datetime(2024, 5, 1, 9, tzinfo=timezone.utc)],
        }
    )
    frame.write_parquet(tmp_path / "log.parquet")
    result = run(tmp_path, tmp_path / "log.parquet")
    assert result.report.time_range["min"] == "2024-05-01T08:00:00+00:00"


def test_no_time_option_ignores_column(tmp_path):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,1\nb,x,garbage\n")
    result = run(tmp_path, source, no_time=True)
    assert result.manifest["has_timestamps"] is False
    assert result.manifest["split"]["kind"] == "random"
