"""Render the summary of a Report as Markdown, for pull requests and chat."""

from __future__ import annotations

from recsearch.report.evaluation_section import SEGMENT_K, metric_label
from recsearch.report.schema import Report

_METRICS = ("recall", "ndcg", "hit_rate", "mrr", "map")


def render_markdown(report: Report, html_name: str | None = None) -> str:
    """Return the summary: the verdict, the data and search in one line each, and the test table at k = 10."""
    comparison = report.comparison
    data, search = report.data, report.search
    k = SEGMENT_K if SEGMENT_K in comparison.ks else comparison.ks[0]
    lines = [
        "# Offline evaluation report",
        "",
        f"**{comparison.verdict}**",
        "",
        f"- **Data:** {data.n_users:,} users, {data.n_items:,} items, {data.n_interactions:,} interactions "
        f"(density {data.density:.3%}), split {data.split.get('kind', '?')}.",
        f"- **Search:** {search.counts.get('complete', 0)} trials completed, {search.counts.get('pruned', 0)} pruned, "
        f"{search.counts.get('fail', 0)} failed; winner trial {search.winner_number} "
        f"(validation NDCG@10 {search.winner_value:.4f}"
        + (f", {search.winner_serving_bytes / 2**20:.2f} MiB" if search.winner_serving_bytes is not None else "")
        + ").",
    ]
    if report.export.exported:
        index = report.export.index
        latency = index.get("search_latency_us", {})
        lines.append(
            f"- **Export:** {index.get('kind', '?')} index, recall@10 {index.get('recall_at_10', float('nan')):.3f} "
            f"against exact search, p50 {latency.get('p50', float('nan')):.0f} µs per query."
        )
    else:
        lines.append("- **Export:** not exported.")

    lines += [
        "",
        f"## Test split at k = {k} ({comparison.n_users:,} users, {comparison.confidence:.0%} bootstrap intervals)",
        "",
        "| model | " + " | ".join(metric_label(f"{m}@{k}") for m in _METRICS) + f" | Coverage@{k} |",
        "|---|" + "---:|" * (len(_METRICS) + 1),
    ]
    for model in comparison.models:
        cells = [
            f"{model.metrics[f'{m}@{k}'].mean:.3f} ({model.metrics[f'{m}@{k}'].lower:.3f}–{model.metrics[f'{m}@{k}'].upper:.3f})"
            for m in _METRICS
        ]
        coverage = model.coverage.get(f"coverage@{k}")
        name = f"**{model.name}**" if model is comparison.models[0] else model.name
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'–' if coverage is None else f'{coverage:.3f}'} |")

    bias = report.segments.popularity
    reference = bias.get("test items", {})
    winner_bias = bias.get(comparison.models[0].name, {})
    if reference and winner_bias:
        lines += [
            "",
            f"Popularity bias: {winner_bias['head_share']:.0%} of the winner's top-{report.segments.k} slots are head items "
            f"(the top {report.segments.head_share:.0%} by training interactions), against {reference['head_share']:.0%} "
            "of the items users chose in test.",
        ]
    if html_name:
        lines += ["", f"Full report with plots: `{html_name}`."]
    return "\n".join(lines) + "\n"
