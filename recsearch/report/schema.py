"""The typed content of an offline evaluation report, written as ``report.json``.

Every number the HTML and Markdown pages show comes from these objects, and every
plot is a ``Figure`` holding the numbers it draws, so ``report.json`` alone can
rebuild the report. Bump ``REPORT_SCHEMA_VERSION`` when a field changes meaning or
disappears; adding a field keeps the version.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

REPORT_SCHEMA = "recsearch.report"
REPORT_SCHEMA_VERSION = 1

FIGURE_KINDS = ("bar", "scatter", "line")


@dataclass(frozen=True)
class Series:
    """One named set of points of a figure.

    ``lower`` and ``upper`` are absolute interval bounds drawn as error bars, and
    ``labels`` is the hover text of each point.
    """

    name: str
    x: list[Any]
    y: list[Any]
    mode: str = "markers"  # "markers", "lines", "lines+markers" or "bar"
    lower: list[float] | None = None
    upper: list[float] | None = None
    labels: list[str] | None = None


@dataclass(frozen=True)
class Figure:
    """One plot: its axes with units, and the series it draws."""

    id: str  # stable, unique within the report; the HTML element id
    section: str
    title: str
    kind: str  # one of FIGURE_KINDS
    x_label: str
    y_label: str
    series: list[Series]
    x_log: bool = False
    y_log: bool = False
    horizontal: bool = False  # bars drawn along the x axis, categories on y
    x_ticks: list[float] | None = None  # explicit tick positions, None: chosen by the plotting library
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FIGURE_KINDS:
            raise ValueError(f"figure kind must be one of {', '.join(FIGURE_KINDS)}, got {self.kind!r}")


@dataclass(frozen=True)
class Table:
    """A table of plain values; ``rows`` align with ``columns``."""

    columns: list[str]
    rows: list[list[Any]]


@dataclass
class DataSection:
    n_users: int
    n_items: int
    n_interactions: int
    n_events: int
    density: float  # interactions / (n_users * n_items)
    event_mix: dict[str, int]
    event_weights: dict[str, float]
    time_range: dict[str, str] | None
    split: dict[str, Any]  # kind, order, counts and any cut-off of the split protocol
    dropped: Table  # what ingestion dropped or merged, with the reason
    item_features: dict[str, int]  # feature name -> cardinality
    warnings: list[str]


@dataclass
class SearchSection:
    study_name: str
    storage: str
    objectives: list[str]
    sampler: str | None
    pruner: str | None
    counts: dict[str, int]  # trial states: complete, pruned, fail, running
    wall_seconds: float | None  # the last `recsearch search` invocation, from search.json
    trial_seconds: float  # sum of every finished trial's duration
    winner_number: int
    winner_value: float
    winner_params: dict[str, Any]
    winner_n_parameters: int | None
    winner_serving_bytes: int | None
    importances: dict[str, float]  # parameter -> importance, empty when too few trials
    importance_method: str
    importance_note: str
    pareto: list[dict[str, Any]]  # trials no other trial beats on both NDCG and serving bytes


@dataclass
class Leaderboard:
    """The top trials by validation NDCG@10 with their metrics and the parameters that differ."""

    metric: str
    table: Table
    shared_params: dict[str, Any]  # parameters equal in every listed trial


@dataclass
class MetricEstimate:
    mean: float
    lower: float
    upper: float


@dataclass
class ModelResult:
    """One model's test metrics: the mean over users with a bootstrap interval, plus coverage."""

    name: str
    description: str
    metrics: dict[str, MetricEstimate]  # "ndcg@10" -> estimate
    coverage: dict[str, float]  # "coverage@10" -> share of the catalogue recommended to anyone


@dataclass
class Comparison:
    split: str
    ks: list[int]
    n_users: int
    n_resamples: int
    confidence: float
    seed: int
    headline_metric: str
    models: list[ModelResult]
    best_baseline: str | None
    difference: MetricEstimate | None  # winner minus best baseline on the headline metric, paired
    significant: bool | None
    verdict: str  # one plain sentence
    protocol: dict[str, Any]


@dataclass
class Segments:
    """Quality by user history length and by head or tail item, and the popularity bias."""

    k: int
    head_share: float
    by_history_length: dict[str, dict[str, dict[str, float]]]  # model -> group -> metric
    by_item_group: dict[str, dict[str, dict[str, float]]]  # model -> head/tail -> metric
    popularity: dict[str, dict[str, float]]  # model (and "test items") -> bias figures


@dataclass
class Training:
    """The winner's per-epoch history and the refit's epoch count."""

    monitor: str
    best_epoch: int | None
    n_epochs: int
    train_seconds: float | None
    history: list[dict[str, float]]
    refit_epochs: int | None


@dataclass
class ExportInfo:
    exported: bool
    model_dir: str | None
    note: str
    index: dict[str, Any] = field(default_factory=dict)  # kind, params, recall_at_10, latencies
    model_version: str | None = None
    embedding_dim: int | None = None


@dataclass
class ExampleUser:
    user_id: str
    n_known: int
    recent: list[dict[str, Any]]  # most recent known items first: id, label
    held_out: list[dict[str, Any]]  # the user's test items
    recommended: list[dict[str, Any]]  # the winner's top k: rank, id, label, score-free, hit


@dataclass
class Report:
    generated_at: str
    recsearch_version: str
    run_dir: str
    data_dir: str
    data: DataSection
    search: SearchSection
    leaderboard: Leaderboard
    comparison: Comparison
    segments: Segments
    training: Training
    export: ExportInfo
    examples: list[ExampleUser]
    figures: list[Figure]
    schema: str = REPORT_SCHEMA
    schema_version: int = REPORT_SCHEMA_VERSION

    def figure(self, figure_id: str) -> Figure:
        """Return the figure with ``figure_id``; raise KeyError when there is none."""
        for figure in self.figures:
            if figure.id == figure_id:
                return figure
        raise KeyError(figure_id)

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively, so the output is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
