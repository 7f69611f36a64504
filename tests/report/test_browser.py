"""Open the HTML report in headless Chromium: it loads offline, logs no error and draws every plot.

Skips when Chromium is absent, unless RECSEARCH_REQUIRE_CHROMIUM=1 (as CI sets it).
The full-page screenshot goes to $RECSEARCH_TEST_ARTIFACTS, else to the test's tmp folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recsearch.report import write_report
from tests.report.chromium import HeadlessChromium, find_chromium

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        reason = "chromium not found at /usr/bin/chromium; install it with `apt-get install -y chromium`"
        if os.environ.get("RECSEARCH_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"{reason} (RECSEARCH_REQUIRE_CHROMIUM=1 makes it mandatory)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory) -> Path:
    configured = os.environ.get("RECSEARCH_TEST_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def loaded_page(chromium, report, tmp_path_factory, artifact_dir):
    """Load the report once; yield the browser, the record of the load and the screenshot path."""
    html = write_report(report, tmp_path_factory.mktemp("browser") / "report.html")["html"]
    with HeadlessChromium(chromium, tmp_path_factory.mktemp("chromium-profile")) as browser:
        browser.open(html.resolve().as_uri())
        n_figures = len(report.figures)
        browser.wait_until(f"document.querySelectorAll('figure.plot .main-svg').length >= {n_figures}")
        screenshot = browser.screenshot(artifact_dir / "report.png")
        yield browser, browser.record(), screenshot


def test_page_has_no_console_errors(loaded_page):
    _, record, _ = loaded_page
    assert record.console_errors == []


def test_page_requests_nothing_outside(loaded_page):
    _, record, _ = loaded_page
    assert record.requests, "the page load recorded no request at all; the recording is broken"
    assert record.outside_requests == []


def test_every_figure_rendered(loaded_page, report):
    browser, _, _ = loaded_page
    for figure in report.figures:
        n_traces = browser.evaluate(
            f"(() => {{ const d = document.getElementById({figure.id!r}); "
            "return d && d._fullData ? d._fullData.length : -1; })()"
        )
        assert n_traces == len(figure.series), figure.id
        # Plotly draws each trace as an SVG group of class "trace" with its points or bars inside.
        drawn = browser.evaluate(f"document.querySelectorAll('#{figure.id} .trace path, #{figure.id} .trace .point').length")
        assert drawn > 0, figure.id


def test_axis_titles_drawn(loaded_page, report):
    browser, _, _ = loaded_page
    for figure in report.figures:
        titles = browser.evaluate(
            f"Array.from(document.querySelectorAll('#{figure.id} .g-xtitle, #{figure.id} .g-ytitle'))"
            ".map(e => e.textContent)"
        )
        assert figure.x_label in titles, figure.id
        assert figure.y_label in titles, figure.id


def test_plots_fit_laptop_width(loaded_page):
    browser, _, _ = loaded_page
    overflow = browser.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0


def test_screenshot_saved(loaded_page):
    _, _, screenshot = loaded_page
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 50_000
