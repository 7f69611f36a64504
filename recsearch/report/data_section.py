"""The data part of the report: sizes, event mix, time range, ingestion losses and the split."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from recsearch.data import Dataset
from recsearch.data.layout import DatasetPaths
from recsearch.data.load import Interactions
from recsearch.report.schema import DataSection, Figure, Series, Table

SECTION = "data"
_MICROSECONDS_PER_DAY = 86_400 * 1_000_000


def collect_data(dataset: Dataset) -> tuple[DataSection, list[Figure]]:
    """Summarise the dataset from its manifest, its ingestion report and its split tables."""
    manifest = dataset.manifest
    report_path = DatasetPaths(dataset.root).report
    ingest = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}

    n_interactions = int(manifest.get("n_interactions", 0))
    split = dict(manifest.get("split", {}))
    split.setdefault("counts", {name: len(dataset.split(name)) for name in ("train", "validation", "test")})
    section = DataSection(
        n_users=dataset.n_users,
        n_items=dataset.n_items,
        n_interactions=n_interactions,
        n_events=int(manifest.get("n_events", 0)),
        density=n_interactions / max(dataset.n_users * dataset.n_items, 1),
        event_mix={str(k): int(v) for k, v in ingest.get("event_mix", {}).items()},
        event_weights={str(k): float(v) for k, v in (manifest.get("event_weights") or {}).items()},
        time_range=manifest.get("time_range"),
        split=split,
        dropped=ingestion_losses(ingest),
        item_features={name: int(spec["cardinality"]) for name, spec in manifest["features"]["item"].items()},
        warnings=[str(w) for w in ingest.get("warnings", [])],
    )
    return section, data_figures(dataset, section)


def ingestion_losses(ingest: dict[str, Any]) -> Table:
    """Return one row per thing ingestion dropped or merged, with its count and why."""
    rows: list[list[Any]] = []
    for reason, count in sorted(ingest.get("dropped_rows", {}).items()):
        rows.append(["rows dropped", reason, int(count)])
    if ingest.get("quarantined_rows"):
        rows.append(["rows quarantined", "bad value, written to quarantine.parquet", int(ingest["quarantined_rows"])])
    if ingest.get("events_merged"):
        rows.append(["events merged", "repeated (user, item) events summed into one interaction", int(ingest["events_merged"])])
    kcore = ingest.get("kcore", {})
    for key in ("users_removed", "items_removed", "pairs_removed"):
        if kcore.get(key):
            rule = (
                f"k-core: users need {kcore.get('min_user_interactions')} interactions, "
                f"items {kcore.get('min_item_interactions')}"
            )
            rows.append([key.replace("_", " "), rule, int(kcore[key])])
    for reason, count in sorted(ingest.get("dropped_split_pairs", {}).items()):
        if count:
            rows.append(["held-out pairs dropped", _split_reason(reason), int(count)])
    for reason, count in sorted(ingest.get("dropped_split_events", {}).items()):
        if count:
            rows.append(["training pairs dropped", _split_reason(reason), int(count)])
    return Table(columns=["what", "reason", "count"], rows=rows)


def _split_reason(reason: str) -> str:
    known = {
        "validation_cold_item": "validation item never seen in training",
        "test_cold_item": "test item never seen in training",
        "validation_cold_user": "validation user never seen in training",
        "test_cold_user": "test user never seen in training",
        "after_user_holdout_time": "later than the user's held-out interactions (would leak the future)",
    }
    return known.get(reason, reason.replace("_", " "))


def all_pairs(dataset: Dataset) -> Interactions:
    return Interactions.concat(dataset.train, dataset.validation, dataset.test)


def data_figures(dataset: Dataset, section: DataSection) -> list[Figure]:
    pairs = all_pairs(dataset)
    figures = []
    if section.event_mix:
        names = sorted(section.event_mix, key=lambda name: -section.event_mix[name])
        figures.append(Figure(
            id="data-event-mix", section=SECTION, title="Events by type", kind="bar",
            x_label="event type", y_label="events (count)",
            series=[Series("events", names, [section.event_mix[n] for n in names], mode="bar")],
        ))

    per_user = np.bincount(pairs.user, minlength=dataset.n_users)
    edges = np.unique(np.geomspace(1, max(int(per_user.max(initial=1)), 2) + 1, num=16).astype(int))
    counts, _ = np.histogram(per_user, bins=edges)
    labels = [f"{low}" if high - low == 1 else f"{low}-{high - 1}" for low, high in zip(edges[:-1], edges[1:])]
    figures.append(Figure(
        id="data-user-history", section=SECTION, title="Users by number of interactions", kind="bar",
        x_label="interactions per user (all splits)", y_label="users (count)",
        series=[Series("users", labels, counts.tolist(), mode="bar")],
    ))

    per_item = np.sort(np.bincount(pairs.item, minlength=dataset.n_items))[::-1]
    figures.append(Figure(
        id="data-item-popularity", section=SECTION, title="Item popularity, most interacted first", kind="line",
        x_label="item rank by interactions", y_label="interactions per item (count, log scale)",
        series=[Series("items", list(range(1, per_item.shape[0] + 1)), per_item.tolist(), mode="lines")],
        y_log=True,
        note=f"The most popular 20% of items hold {_top_share(per_item, 0.2):.0%} of all interactions.",
    ))

    if pairs.last_time is not None and len(pairs):
        day = (pairs.last_time // _MICROSECONDS_PER_DAY).astype(np.int64)
        first = int(day.min())
        per_day = np.bincount(day - first)
        dates = np.datetime64(first, "D") + np.arange(per_day.shape[0])
        figures.append(Figure(
            id="data-over-time", section=SECTION, title="Interactions over time", kind="bar",
            x_label="date of the pair's last event (UTC)", y_label="interactions per day (count)",
            series=[Series("interactions", [str(d) for d in dates], per_day.tolist(), mode="bar")],
        ))
    return figures


def _top_share(sorted_counts: np.ndarray, share: float) -> float:
    n_top = int(np.ceil(share * sorted_counts.shape[0]))
    total = sorted_counts.sum()
    return float(sorted_counts[:n_top].sum() / total) if total else 0.0
