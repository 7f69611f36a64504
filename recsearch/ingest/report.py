"""The ingestion report: every row read, and where each one went."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class IngestReport:
    """Counts of what ingestion read, dropped, merged and kept, by reason.

    Rows and events are counted separately from (user, item) pairs. The accounting
    is true by construction and is checked before the dataset is written:
    ``rows_read == events_valid + sum(dropped_rows.values())`` and
    ``events_valid == events_in_interactions + kcore.events_removed``.
    """

    rows_read: int = 0
    rows_per_file: dict[str, int] = field(default_factory=dict)
    dropped_rows: dict[str, int] = field(default_factory=dict)  # reason -> rows
    quarantined_rows: int = 0  # rows written to quarantine.parquet (also in dropped_rows)
    events_valid: int = 0
    event_mix: dict[str, int] = field(default_factory=dict)  # event type -> valid rows
    pairs: int = 0  # distinct (user, item) pairs before k-core filtering
    events_merged: int = 0  # valid events folded into an existing pair
    kcore: dict[str, int] = field(default_factory=dict)
    events_in_interactions: int = 0
    interactions: int = 0  # pairs after k-core filtering
    n_users: int = 0
    n_items: int = 0
    split: dict[str, Any] = field(default_factory=dict)
    split_counts: dict[str, int] = field(default_factory=dict)  # split -> pairs
    dropped_split_pairs: dict[str, int] = field(default_factory=dict)
    dropped_split_events: dict[str, int] = field(default_factory=dict)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # --items / --users table counts
    time_range: dict[str, str] | None = None
    time_format: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def check_accounting(self) -> None:
        dropped = sum(self.dropped_rows.values())
        if self.rows_read != self.events_valid + dropped:
            raise AssertionError(
                f"row accounting broken: read {self.rows_read}, valid {self.events_valid}, dropped {dropped}"
            )
        removed = self.kcore.get("events_removed", 0)
        if self.events_valid != self.events_in_interactions + removed:
            raise AssertionError(
                f"event accounting broken: valid {self.events_valid}, kept {self.events_in_interactions}, "
                f"k-core removed {removed}"
            )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
