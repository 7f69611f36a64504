"""Write a Report as HTML, JSON and Markdown side by side."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from recsearch.errors import InputError
from recsearch.report.html import render_html
from recsearch.report.markdown import render_markdown
from recsearch.report.schema import Report

HTML_SUFFIXES = (".html", ".htm")


def report_paths(html_path: Path) -> dict[str, Path]:
    """Return where each format goes: ``report.html`` gives ``report.json`` and ``report.md`` beside it."""
    if html_path.suffix.lower() not in HTML_SUFFIXES:
        raise InputError(f"the report file must end in .html, got {html_path}")
    return {"html": html_path, "json": html_path.with_suffix(".json"), "markdown": html_path.with_suffix(".md")}


def write_report(report: Report, html_path: str | Path) -> dict[str, Path]:
    """Write the three files, each through a temporary file renamed into place; return their paths."""
    paths = report_paths(Path(html_path))
    paths["html"].parent.mkdir(parents=True, exist_ok=True)
    contents = {
        "html": render_html(report),
        "json": report.to_json(),
        "markdown": render_markdown(report, paths["html"].name),
    }
    for kind, text in contents.items():
        _write_atomically(paths[kind], text)
    return paths


def _write_atomically(path: Path, text: str) -> None:
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        # mkstemp creates the file readable by its owner only; give it the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(scratch, 0o666 & ~umask)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
