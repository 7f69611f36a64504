"""The offline evaluation report of a search run: ``report.json``, ``report.md`` and a self-contained HTML page."""

from recsearch.report.collect import ReportConfig, build_report
from recsearch.report.html import render_html
from recsearch.report.markdown import render_markdown
from recsearch.report.schema import REPORT_SCHEMA, REPORT_SCHEMA_VERSION, Figure, Report, Series
from recsearch.report.write import report_paths, write_report

__all__ = [
    "REPORT_SCHEMA",
    "REPORT_SCHEMA_VERSION",
    "Figure",
    "Report",
    "ReportConfig",
    "Series",
    "build_report",
    "render_html",
    "render_markdown",
    "report_paths",
    "write_report",
]
