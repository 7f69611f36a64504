"""Render a Report as one self-contained HTML page: Plotly's JavaScript inlined once, no outside address.

The page references no CDN, web font or image URL; every plot is a Plotly figure whose
data is embedded in the page, drawn by the inlined plotly.js, so the file opens offline.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from recsearch.report.evaluation_section import WINNER, metric_label
from recsearch.report.schema import Figure, MetricEstimate, Report, Table

# Colour-blind-safe qualitative palette (Okabe and Ito, 2008), winner first.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif"  # local fonts only
FIGURE_HEIGHT_PX = 380
# No mode bar: it covers the legends. Dragging still zooms and a double click resets.
_PLOT_CONFIG = {"displayModeBar": False, "responsive": True}
_MAX_UNIT_TICKS = 20  # integer axes up to this span get a tick at every integer (trials, epochs)

SECTIONS = (
    ("data", "Data"),
    ("search", "Search"),
    ("leaderboard", "Leaderboard"),
    ("comparison", "Winner against baselines"),
    ("segments", "Segments"),
    ("training", "Training"),
    ("export", "Export"),
    ("examples", "Example users"),
)


def plotly_figure(figure: Figure) -> go.Figure:
    """Build the Plotly figure of one report figure, with labelled axes and a shared style."""
    plot = go.Figure()
    for i, series in enumerate(figure.series):
        colour = PALETTE[i % len(PALETTE)]
        error = None
        if series.lower is not None and series.upper is not None:
            error = dict(
                type="data", symmetric=False, thickness=1.2, width=3,
                array=[u - y for u, y in zip(series.upper, series.y)],
                arrayminus=[y - lo for lo, y in zip(series.lower, series.y)],
            )
        if figure.kind == "bar":
            plot.add_trace(go.Bar(
                x=series.x, y=series.y, name=series.name, marker_color=colour, error_y=error,
                orientation="h" if figure.horizontal else "v", hovertext=series.labels,
            ))
        else:
            mode = "markers" if series.mode == "bar" else series.mode
            plot.add_trace(go.Scatter(
                x=series.x, y=series.y, name=series.name, mode=mode, error_y=error, hovertext=series.labels,
                marker=dict(color=colour, size=9 if "markers" in mode else 6, line=dict(width=0.5, color="white")),
                line=dict(color=colour, width=2),
            ))
    plot.update_layout(
        template="plotly_white",
        height=FIGURE_HEIGHT_PX,
        margin=dict(l=70, r=20, t=30, b=60),
        font=dict(family=FONT, size=13),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
        showlegend=len(figure.series) > 1,
        barmode="group",
        xaxis_title=figure.x_label,
        yaxis_title=figure.y_label,
        hovermode="closest",
    )
    if figure.horizontal:
        plot.update_yaxes(automargin=True)
    if figure.x_log:
        plot.update_xaxes(type="log", **_log_ticks([x for series in figure.series for x in series.x]))
    if figure.y_log:
        plot.update_yaxes(type="log", **_log_ticks([y for series in figure.series for y in series.y]))
    if figure.x_ticks is not None:
        plot.update_xaxes(tickmode="array", tickvals=figure.x_ticks, ticktext=[f"{t:g}" for t in figure.x_ticks])
    elif figure.kind != "bar" and not figure.x_log and _is_small_integer_range(figure):
        plot.update_xaxes(dtick=1)
    return plot


def _log_ticks(values: list[Any]) -> dict[str, Any]:
    """Return ticks at 1, 2 and 5 times the powers of ten that span ``values``, labelled in plain numbers."""
    positive = [float(v) for v in values if isinstance(v, (int, float)) and v > 0]
    if not positive:
        return {}
    low, high = min(positive), max(positive)
    ticks = [
        mantissa * 10.0**exponent
        for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
        for mantissa in (1, 2, 5)
    ]
    ticks = [t for t in ticks if low / 2.5 <= t <= high * 2.5]
    return {"tickmode": "array", "tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def _is_small_integer_range(figure: Figure) -> bool:
    values = [x for series in figure.series for x in series.x]
    if not values or not all(isinstance(x, int) and not isinstance(x, bool) for x in values):
        return False
    return max(values) - min(values) <= _MAX_UNIT_TICKS


def render_html(report: Report) -> str:
    """Return the whole page: summary, one section per part of the report, and every figure."""
    figures: dict[str, list[Figure]] = {}
    for figure in report.figures:
        figures.setdefault(figure.section, []).append(figure)
    body = [
        _header(report),
        _summary(report),
        _data(report, figures.get("data", [])),
        _search(report, figures.get("search", [])),
        _leaderboard(report),
        _comparison(report, figures.get("comparison", [])),
        _segments(report, figures.get("segments", [])),
        _training(report, figures.get("training", [])),
        _export(report),
        _examples(report),
    ]
    title = f"recsearch report: {escape(report.run_dir)}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Forbid every request to another address, so the page stays offline even if a
        # library inside it tried one.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline' "
        "'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:\">",
        f"<title>{title}</title>",
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        _nav(),
        '<main>',
        *body,
        "</main></body></html>",
    ])


def _figure_html(figure: Figure) -> str:
    div = plotly_figure(figure).to_html(
        full_html=False, include_plotlyjs=False, include_mathjax=False, div_id=figure.id, config=_PLOT_CONFIG,
        default_width="100%", default_height=f"{FIGURE_HEIGHT_PX}px",
    )
    note = f'<p class="note">{escape(figure.note)}</p>' if figure.note else ""
    return f'<figure class="plot" data-figure="{escape(figure.id)}"><figcaption>{escape(figure.title)}</figcaption>{div}{note}</figure>'


def _figures(figures: list[Figure]) -> str:
    return '<div class="grid">' + "".join(_figure_html(f) for f in figures) + "</div>" if figures else ""


def _section(section_id: str, title: str, *parts: str) -> str:
    return f'<section id="{section_id}"><h2>{escape(title)}</h2>' + "".join(parts) + "</section>"


def _nav() -> str:
    links = "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title in SECTIONS)
    return f'<nav><a class="brand" href="#top">recsearch report</a>{links}</nav>'


def fmt(value: Any, digits: int = 3) -> str:
    """Format a value for a table cell: integers with separators, floats to ``digits`` places."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        return f"{value:,.{digits}f}"
    return str(value)


def _table(table: Table, *, numeric_from: int = 0, class_name: str = "") -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table.columns)
    rows = []
    for row in table.rows:
        cells = []
        for i, value in enumerate(row):
            numeric = i >= numeric_from and isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f'<td class="{"num" if numeric else ""}">{escape(fmt(value))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="table-wrap"><table class="{class_name}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _key_values(pairs: list[tuple[str, Any]]) -> str:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(fmt(v))}</dd>" for k, v in pairs)
    return f'<dl class="kv">{items}</dl>'


def _header(report: Report) -> str:
    return (
        '<header id="top"><h1>Offline evaluation report</h1>'
        f'<p class="meta">Run <code>{escape(report.run_dir)}</code> · data <code>{escape(report.data_dir)}</code> · '
        f"generated {escape(report.generated_at)} by recsearch {escape(report.recsearch_version)} · "
        f"report schema {report.schema_version}</p></header>"
    )


def _verdict_class(report: Report) -> str:
    comparison = report.comparison
    if comparison.significant is None or comparison.difference is None:
        return "neutral"
    if not comparison.significant:
        return "neutral"
    return "good" if comparison.difference.mean > 0 else "bad"


def _card(label: str, value: str, detail: str = "") -> str:
    detail_html = f'<div class="detail">{escape(detail)}</div>' if detail else ""
    return f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>{detail_html}</div>'


def _interval(estimate: MetricEstimate) -> str:
    return f"{estimate.lower:.3f} to {estimate.upper:.3f}"


def _summary(report: Report) -> str:
    comparison = report.comparison
    headline = comparison.headline_metric
    winner = comparison.models[0].metrics[headline]
    cards = [_card(f"winner, test {metric_label(headline)}", f"{winner.mean:.3f}",
                   f"{comparison.confidence:.0%} CI {_interval(winner)}")]
    if comparison.best_baseline is not None:
        best = next(m for m in comparison.models if m.name == comparison.best_baseline)
        cards.append(_card(f"best baseline ({best.name})", f"{best.metrics[headline].mean:.3f}",
                           f"{comparison.confidence:.0%} CI {_interval(best.metrics[headline])}"))

    search = report.search
    cards.append(_card("trials", fmt(sum(search.counts.values())),
                       f"{search.counts.get('complete', 0)} completed, {search.counts.get('pruned', 0)} pruned, "
                       f"{search.counts.get('fail', 0)} failed"))
    if search.winner_serving_bytes is not None:
        cards.append(_card("winner serving size", f"{search.winner_serving_bytes / 2**20:.2f} MiB",
                           f"{fmt(search.winner_n_parameters)} parameters"))

    data = report.data
    cards.append(_card("data", f"{data.n_interactions:,} interactions",
                       f"{data.n_users:,} users × {data.n_items:,} items"))
    exported = report.export
    if exported.exported:
        recall = exported.index.get("recall_at_10")
        cards.append(_card("exported index", str(exported.index.get("kind", "?")),
                           f"recall@10 {fmt(recall)}" if recall is not None else ""))
    else:
        cards.append(_card("exported index", "not exported"))
    return (
        f'<section id="summary"><div class="verdict {_verdict_class(report)}">{escape(comparison.verdict)}</div>'
        f'<div class="cards">{"".join(cards)}</div></section>'
    )


def _data(report: Report, figures: list[Figure]) -> str:
    data = report.data
    time_range = data.time_range or {}
    split = data.split
    split_counts = split.get("counts", {})
    pairs = [
        ("users", data.n_users),
        ("items", data.n_items),
        ("interactions (user, item pairs)", data.n_interactions),
        ("events", data.n_events),
        ("density", f"{data.density:.3%}"),
        ("time range (UTC)", f"{_timestamp(time_range.get('min'))} to {_timestamp(time_range.get('max'))}" if time_range else "no timestamps"),
        ("event weights", ", ".join(f"{k} {v:g}" for k, v in data.event_weights.items()) or "–"),
        ("item features", ", ".join(f"{k} ({v} values)" for k, v in data.item_features.items()) or "none"),
        ("split", split.get("kind", "–")),
        ("split order", split.get("order", "–")),
        ("train / validation / test", " / ".join(f"{split_counts.get(n, 0):,}" for n in ("train", "validation", "test"))),
    ]
    for key in ("test_cut", "validation_cut", "seed"):
        if key in split:
            pairs.append((key.replace("_", " "), split[key]))
    dropped = (
        _table(data.dropped, numeric_from=2) if data.dropped.rows
        else '<p class="note">Ingestion dropped and merged nothing.</p>'
    )
    warnings = "".join(f"<li>{escape(w)}</li>" for w in data.warnings)
    return _section(
        "data", "Data", _key_values(pairs),
        "<h3>What ingestion dropped or merged, and why</h3>", dropped,
        f'<h3>Ingestion warnings</h3><ul>{warnings}</ul>' if warnings else "",
        _figures(figures),
    )


def _timestamp(value: str | None) -> str:
    """Shorten an ISO-8601 UTC time to "2024-09-01 01:14"."""
    if not value:
        return "–"
    return value.replace("T", " ").removesuffix("+00:00")[:16]


def _search(report: Report, figures: list[Figure]) -> str:
    search = report.search
    pairs = [
        ("study", f"{search.study_name} in {search.storage}"),
        ("objectives", ", ".join(search.objectives)),
        ("sampler / pruner", f"{search.sampler or '–'} / {search.pruner or '–'}"),
        ("trials completed", search.counts.get("complete", 0)),
        ("trials pruned", search.counts.get("pruned", 0)),
        ("trials failed", search.counts.get("fail", 0)),
        ("trials still running", search.counts.get("running", 0)),
        ("wall time of the last search", "–" if search.wall_seconds is None else _duration(search.wall_seconds)),
        ("time in trials (all workers)", _duration(search.trial_seconds)),
        ("winner", f"trial {search.winner_number}, validation NDCG@10 {search.winner_value:.4f}"),
        ("parameter importances", f"{search.importance_method}; {search.importance_note}"),
    ]
    pareto = ""
    if search.pareto:
        rows = [[p["number"], p["ndcg"], p["serving_bytes"] / 2**20] for p in search.pareto]
        pareto = "<h3>Pareto front: validation NDCG@10 against serving size</h3>" + _table(
            Table(["trial", "validation NDCG@10", "serving MiB"], rows), numeric_from=1
        )
    return _section("search", "Search", _key_values(pairs), pareto, _figures(figures))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _leaderboard(report: Report) -> str:
    board = report.leaderboard
    shared = "".join(f"<li><code>{escape(k)}</code> = {escape(fmt(v, 4))}</li>" for k, v in board.shared_params.items())
    return _section(
        "leaderboard", "Leaderboard",
        f'<p class="note">The {len(board.table.rows)} best completed trials by {escape(board.metric)} '
        "(validation split). Parameter columns show only what differs between them.</p>",
        _table(board.table, numeric_from=2, class_name="wide"),
        f"<details><summary>Parameters shared by every listed trial ({len(board.shared_params)})</summary><ul class=\"columns\">{shared}</ul></details>"
        if shared else "",
    )


def _comparison(report: Report, figures: list[Figure]) -> str:
    comparison = report.comparison
    tables = []
    for k in comparison.ks:
        metrics = [f"{name}@{k}" for name in ("recall", "ndcg", "hit_rate", "mrr", "map")]
        best = {m: max(model.metrics[m].mean for model in comparison.models) for m in metrics}
        head = "".join(f"<th>{escape(metric_label(m))}</th>" for m in metrics) + f"<th>Coverage@{k}</th>"
        rows = []
        for model in comparison.models:
            cells = []
            for m in metrics:
                estimate = model.metrics[m]
                strong = "best" if estimate.mean == best[m] else ""
                cells.append(
                    f'<td class="num {strong}">{estimate.mean:.3f}<span class="ci">{estimate.lower:.3f}–{estimate.upper:.3f}</span></td>'
                )
            coverage = model.coverage.get(f"coverage@{k}")
            cells.append(f'<td class="num">{fmt(coverage)}</td>')
            name_class = "winner" if model.name == WINNER else ""
            rows.append(
                f'<tr><th class="{name_class}" title="{escape(model.description)}">{escape(model.name)}'
                f'<span class="ci">{escape(model.description)}</span></th>{"".join(cells)}</tr>'
            )
        tables.append(
            f"<h3>At k = {k}</h3><div class=\"table-wrap\"><table><thead><tr><th>model</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    protocol = "".join(f"<li><b>{escape(k.replace('_', ' '))}</b>: {escape(str(v))}</li>" for k, v in comparison.protocol.items())
    return _section(
        "comparison", "Winner against baselines (test split)",
        f'<div class="verdict {_verdict_class(report)}">{escape(comparison.verdict)}</div>',
        f'<p class="note">Each cell: the mean over {comparison.n_users:,} test users, with its '
        f"{comparison.confidence:.0%} percentile bootstrap interval ({comparison.n_resamples:,} resamples of users, "
        "paired across models) below it. Coverage is the share of the catalogue recommended to at least one user. "
        "Bold marks the best value of a column.</p>",
        *tables,
        _figures(figures),
        f"<details><summary>Protocol</summary><ul>{protocol}</ul></details>",
    )


def _segments(report: Report, figures: list[Figure]) -> str:
    segments = report.segments
    rows = [
        [name, values["mean_item_popularity"], values["head_share"], values["gini"]]
        for name, values in segments.popularity.items()
    ]
    table = Table(
        ["", "mean training interactions of the items", f"head-item share (head: top {segments.head_share:.0%} of items)",
         "Gini of recommendation counts"],
        rows,
    )
    return _section(
        "segments", "Segments and popularity bias",
        f'<p class="note">Recommendations at k = {segments.k}, compared with the items users actually chose in the '
        "test split. A higher head share or Gini than the test items' means the model favours popular items.</p>",
        _table(table, numeric_from=1),
        _figures(figures),
    )


def _training(report: Report, figures: list[Figure]) -> str:
    training = report.training
    pairs = [
        ("epochs run", training.n_epochs),
        ("best epoch (counted from 1)", None if training.best_epoch is None else training.best_epoch + 1),
        ("selected by", training.monitor),
        ("training time", None if training.train_seconds is None else _duration(training.train_seconds)),
        ("refit epochs (train + validation)", training.refit_epochs),
    ]
    empty = "" if figures else '<p class="note">The winner recorded no per-epoch history.</p>'
    return _section("training", "Training of the winner", _key_values(pairs), empty, _figures(figures))


def _export(report: Report) -> str:
    exported = report.export
    if not exported.exported:
        return _section("export", "Export", f'<p class="note">{escape(exported.note)}</p>')
    index = exported.index
    latency = index.get("search_latency_us", {})
    exact = index.get("exact_search_latency_us", {})
    pairs = [
        ("model directory", exported.model_dir),
        ("model version", exported.model_version),
        ("embedding size", exported.embedding_dim),
        ("index", f"{index.get('kind', '?')} ({index.get('metric', '?')})"),
        ("index parameters", ", ".join(f"{k}={v}" for k, v in index.get("params", {}).items()) or "–"),
        ("recall@10 against exact search", index.get("recall_at_10")),
        ("queries measured", index.get("recall_queries")),
        ("search latency p50 / p99", f"{fmt(latency.get('p50'), 0)} / {fmt(latency.get('p99'), 0)} µs"),
        ("exact search latency p50 / p99", f"{fmt(exact.get('p50'), 0)} / {fmt(exact.get('p99'), 0)} µs"),
    ]
    return _section("export", "Export", _key_values(pairs), f'<p class="note">{escape(exported.note)}</p>')


def _item_list(items: list[dict[str, Any]], *, ranked: bool = False) -> str:
    entries = []
    for item in items:
        classes = "hit" if item.get("hit") else ""
        rank = f'<span class="rank">{item["rank"]}</span>' if ranked else ""
        label = f'<span class="label">{escape(item["label"])}</span>' if item.get("label") else ""
        entries.append(f'<li class="{classes}">{rank}<code>{escape(item["id"])}</code>{label}</li>')
    return f'<ol class="items">{"".join(entries)}</ol>' if entries else '<p class="note">none</p>'


def _examples(report: Report) -> str:
    cards = []
    for example in report.examples:
        cards.append(
            f'<div class="example"><h3>User <code>{escape(example.user_id)}</code> '
            f'<span class="meta">{example.n_known} known items</span></h3>'
            f'<div class="cols"><div><h4>Most recent known items</h4>{_item_list(example.recent)}'
            f"<h4>Held out for test</h4>{_item_list(example.held_out)}</div>"
            f"<div><h4>Winner's top {len(example.recommended)}</h4>{_item_list(example.recommended, ranked=True)}</div></div></div>"
        )
    return _section(
        "examples", "Example users",
        '<p class="note">Users picked across history lengths (10th to 90th percentile). '
        "Highlighted recommendations are the user's held-out test items.</p>",
        '<div class="examples">' + "".join(cards) + "</div>",
    )


_CSS = """
:root { --ink: #1d2433; --muted: #5b6475; --line: #e3e7ee; --bg: #f6f8fb; --accent: #0072B2;
  --good: #e7f6ee; --good-ink: #0b6b3a; --bad: #fdecea; --bad-ink: #a3261b; --neutral: #fff6e0; --neutral-ink: #7a5300; }
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif;
  color: var(--ink); background: var(--bg); line-height: 1.45; font-size: 15px; }
nav { position: sticky; top: 0; z-index: 10; display: flex; flex-wrap: wrap; gap: 4px 18px; align-items: center;
  padding: 10px 28px; background: #ffffffee; border-bottom: 1px solid var(--line); backdrop-filter: blur(4px); }
nav a { color: var(--muted); text-decoration: none; font-size: 14px; }
nav a:hover { color: var(--accent); }
nav a.brand { color: var(--ink); font-weight: 700; margin-right: 10px; }
main { max-width: 1400px; margin: 0 auto; padding: 8px 28px 60px; }
header h1 { margin: 18px 0 4px; font-size: 26px; }
.meta { color: var(--muted); font-size: 13px; margin: 0; font-weight: normal; }
section { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px; margin: 18px 0;
  scroll-margin-top: 60px; }
section#summary { background: none; border: none; padding: 0; }
h2 { margin: 0 0 12px; font-size: 20px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
h4 { font-size: 13px; margin: 10px 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
code { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: 0.92em; }
.verdict { padding: 12px 16px; border-radius: 8px; font-weight: 600; margin: 8px 0 14px; }
.verdict.good { background: var(--good); color: var(--good-ink); }
.verdict.bad { background: var(--bad); color: var(--bad-ink); }
.verdict.neutral { background: var(--neutral); color: var(--neutral-ink); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; }
.card { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 24px; font-weight: 700; margin-top: 2px; }
.card .detail { color: var(--muted); font-size: 13px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0 0 8px; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; margin: 4px 0 10px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--bg); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { font-weight: 700; }
th.winner { color: var(--accent); }
.ci { display: block; color: var(--muted); font-size: 11.5px; font-weight: normal; }
table.wide td { white-space: nowrap; }
.note { color: var(--muted); font-size: 13.5px; margin: 6px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 14px; margin-top: 14px; }
figure.plot { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; min-width: 0; }
figure.plot figcaption { font-weight: 600; font-size: 14.5px; }
details { margin-top: 10px; }
summary { cursor: pointer; color: var(--accent); }
ul.columns { columns: 2; font-size: 13px; }
.examples { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
.example { border: 1px solid var(--line); border-radius: 8px; padding: 4px 14px 10px; }
.example .cols { display: grid; grid-template-columns: 1fr 1.2fr; gap: 12px; }
ol.items { list-style: none; padding: 0; margin: 0; font-size: 13px; }
ol.items li { padding: 2px 4px; border-radius: 4px; }
ol.items li.hit { background: var(--good); color: var(--good-ink); font-weight: 600; }
ol.items .rank { display: inline-block; width: 1.8em; color: var(--muted); }
ol.items .label { display: block; color: var(--muted); font-size: 12px; margin-left: 1.8em; }
ol.items li:not(:has(.rank)) .label { margin-left: 0; }
@media (max-width: 700px) { .grid { grid-template-columns: 1fr; } .example .cols { grid-template-columns: 1fr; } }
"""
