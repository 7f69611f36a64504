from __future__ import annotations

import json

from recsearch.cli.main import main
from recsearch.datasets import write_clicklog

from .conftest import write_text


def test_ingest_command_writes_dataset(tmp_path, small_log, capsys):
    source = write_clicklog(small_log, tmp_path / "log.csv.gz")
    status = main([
        "ingest", str(source), "--out", str(tmp_path / "data"),
        "--event-weights", "view=1,addtocart=3,purchase=5", "--item-features", "category,brand",
        "--min-user-interactions", "2",
    ])
    assert status == 0
    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert manifest["event_weights"] == {"view": 1.0, "addtocart": 3.0, "purchase": 5.0}
    assert list(manifest["features"]["item"]) == ["category", "brand"]
    assert "rows read" in capsys.readouterr().err


def test_ingest_command_reports_error(tmp_path, capsys):
    source = write_text(tmp_path / "log.csv", "user_id,item_id,timestamp\na,x,soon\n")
    status = main(["ingest", str(source), "--out", str(tmp_path / "data")])
    assert status == 2
    err = capsys.readouterr().err
    assert "line 2" in err
    assert "'soon'" in err
    assert not (tmp_path / "data").exists()


def test_generate_then_ingest(tmp_path):
    assert main(["generate", str(tmp_path / "clicks.parquet"), "--users", "50", "--items", "40"]) == 0
    assert main(["ingest", str(tmp_path / "clicks.parquet"), "--out", str(tmp_path / "data")]) == 0


def test_tab_separator_spelling(tmp_path):
    source = write_text(tmp_path / "log.txt", "user_id\titem_id\na\tx\nb\tx\n")
    assert main(["ingest", str(source), "--out", str(tmp_path / "data"), "--separator", "\\t"]) == 0
