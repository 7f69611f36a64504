"""The written files, the command line, the export section and invalid input."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from recsearch.cli.main import main
from recsearch.errors import DatasetFormatError, InputError
from recsearch.model_dir import write_model_dir
from recsearch.report import ReportConfig, build_report, render_html, render_markdown, write_report
from recsearch.report.collect import collect_export

OUTSIDE_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def test_three_files_written(report, tmp_path):
    paths = write_report(report, tmp_path / "out" / "report.html")
    assert {p.name for p in paths.values()} == {"report.html", "report.json", "report.md"}
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["schema_version"] == 1
    assert report.comparison.verdict in paths["markdown"].read_text(encoding="utf-8")


def test_html_has_every_section_and_figure(report):
    page = render_html(report)
    for section in ("data", "search", "leaderboard", "comparison", "segments", "training", "export", "examples"):
        assert f'<section id="{section}">' in page, section
    for figure in report.figures:
        assert f'id="{figure.id}"' in page, figure.id
        assert figure.x_label in page, figure.id


def test_html_references_nothing_outside(report):
    # plotly.js, inlined once, contains link texts of map layers that these figures never
    # draw. The Chromium test checks what the page actually requests.
    page = render_html(report)
    assert page.count(get_plotlyjs()) == 1
    page = page.replace(get_plotlyjs(), "")
    assert not OUTSIDE_REFERENCE.search(page)
    assert "<link" not in page
    assert "@import" not in page
    assert "default-src 'none'" in page


def test_markdown_has_table_at_ten(report):
    text = render_markdown(report)
    assert "| model | Recall@10 | NDCG@10 | HitRate@10 | MRR@10 | MAP@10 | Coverage@10 |" in text
    for model in report.comparison.models:
        assert f"{model.metrics['ndcg@10'].mean:.3f}" in text


def test_out_must_be_html(report, tmp_path):
    with pytest.raises(InputError, match=r"\.html"):
        write_report(report, tmp_path / "report.pdf")


def test_cli_writes_report(search_run, tmp_path):
    out = tmp_path / "cli" / "summary.html"
    status = main(["-q", "report", str(search_run), "--out", str(out), "--resamples", "100"])
    assert status == 0
    assert out.is_file()
    assert (tmp_path / "cli" / "summary.json").is_file()
    assert (tmp_path / "cli" / "summary.md").is_file()


def test_cli_rejects_missing_run(tmp_path):
    assert main(["-q", "report", str(tmp_path)]) == 2


def test_run_without_search_rejected(tmp_path):
    (tmp_path / "winner").mkdir()
    (tmp_path / "winner" / "model.pt").write_bytes(b"")
    with pytest.raises(InputError, match="search.json is missing"):
        build_report(tmp_path)


@pytest.mark.parametrize("n_resamples", [0, 99])
def test_too_few_resamples_rejected(n_resamples):
    with pytest.raises(InputError, match="resamples"):
        ReportConfig(n_resamples=n_resamples)


def test_moved_dataset_named(search_run, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(search_run, moved)
    config = ReportConfig(n_resamples=100, data_dir=tmp_path / "missing")
    with pytest.raises(DatasetFormatError, match="missing"):
        build_report(moved, config)


def test_export_manifest_read(tmp_path):
    index = {
        "kind": "hnsw", "metric": "inner_product", "params": {"M": 32, "efSearch": 64},
        "recall_at_10": 0.97, "recall_queries": 500,
        "search_latency_us": {"p50": 120.0, "p99": 300.0}, "exact_search_latency_us": {"p50": 900.0, "p99": 1500.0},
        "latency_note": "one query per search", "tried": [{"M": 16}],
    }
    write_model_dir(
        tmp_path / "run" / "export", arrays={"item_vectors.npy": np.zeros((3, 4), dtype=np.float32)}, blobs={},
        manifest={"index": index, "embedding_dim": 4},
    )
    info = collect_export(tmp_path / "run", None)
    assert info.exported is True
    assert info.index["recall_at_10"] == 0.97
    assert info.index["search_latency_us"] == {"p50": 120.0, "p99": 300.0}
    assert "tried" not in info.index
    assert info.embedding_dim == 4


def test_export_section_rendered(report, tmp_path):
    write_model_dir(
        tmp_path / "model", arrays={"item_vectors.npy": np.zeros((3, 4), dtype=np.float32)}, blobs={},
        manifest={"index": {"kind": "flat", "metric": "inner_product", "params": {}, "recall_at_10": 1.0,
                            "search_latency_us": {"p50": 55.0, "p99": 80.0}}},
    )
    report.export = collect_export(tmp_path, tmp_path / "model")
    try:
        page = render_html(report)
        assert "recall@10 against exact search" in page
        assert "55 / 80 µs" in page
        assert "flat index, recall@10 1.000" in render_markdown(report)
    finally:
        report.export = collect_export(tmp_path / "nothing", None)


def test_missing_model_dir_rejected(tmp_path):
    with pytest.raises(InputError, match="manifest.json"):
        collect_export(tmp_path, tmp_path / "absent")
