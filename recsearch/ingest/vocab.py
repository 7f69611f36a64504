"""Id vocabularies and categorical feature vocabularies.

Indices are contiguous from 0 and ordered by frequency (most interactions first,
then by id), so frequency buckets of mixed-dimension embeddings are index ranges.
Feature vocabularies reserve index 0 for a missing value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from recsearch.data import layout
from recsearch.ingest.clean import TIME


def build_vocabulary(pairs: pl.DataFrame, id_column: str, index_column: str) -> pl.DataFrame:
    """Return ``index_column``, ``id_column`` and ``n_interactions`` for every id in ``pairs``.

    ``id_column`` keeps its type (categorical during ingestion) so the result joins
    back onto ``pairs``; ties in frequency are ordered by the id text.
    """
    return (
        pairs.group_by(id_column)
        .agg(pl.len().cast(pl.Int64).alias("n_interactions"))
        .sort([pl.col("n_interactions"), pl.col(id_column).cast(pl.String)], descending=[True, False])
        .with_row_index(index_column)
        .with_columns(pl.col(index_column).cast(pl.Int32))
        .select(index_column, id_column, "n_interactions")
    )


@dataclass
class FeatureStats:
    """Counts of one categorical feature, for the ingestion report."""

    cardinality: int = 0  # vocabulary size, including the missing index 0
    missing: int = 0  # entities with no value
    conflicting: int = 0  # entities seen with more than one value (the latest was kept)
    source: str = "log"

    def to_json(self) -> dict:
        return {
            "cardinality": self.cardinality,
            "missing": self.missing,
            "conflicting": self.conflicting,
            "source": self.source,
        }


@dataclass
class EntityFeatures:
    """Feature columns of one entity (user or item), encoded, plus their vocabularies."""

    table: pl.DataFrame  # index column, then one Int32 column per feature
    vocabularies: dict[str, pl.DataFrame] = field(default_factory=dict)
    stats: dict[str, FeatureStats] = field(default_factory=dict)


def latest_values(events: pl.DataFrame, id_column: str, columns: list[str], has_time: bool) -> pl.DataFrame:
    """Return, per id, the most recent non-null value of each column and its distinct-value count."""
    ordered = events.sort(TIME) if has_time else events
    aggregations = []
    for name in columns:
        aggregations.append(pl.col(name).drop_nulls().last().alias(name))
        aggregations.append(pl.col(name).drop_nulls().n_unique().alias(f"_n_{name}"))
    return ordered.group_by(id_column).agg(aggregations)


def encode_features(
    vocabulary: pl.DataFrame,
    index_column: str,
    id_column: str,
    values: pl.DataFrame,
    names: dict[str, str],
    source: str,
) -> EntityFeatures:
    """Encode feature values per id into integer columns aligned with ``vocabulary``.

    ``values`` has ``id_column``, one column per key of ``names`` and optional
    ``_n_{column}`` distinct-value counts. The values of ``names`` are the output
    feature names.
    """
    joined = vocabulary.select(index_column, id_column).join(values, on=id_column, how="left")
    table = joined.select(index_column)
    result = EntityFeatures(table=table)
    for column, name in names.items():
        stats = FeatureStats(source=source)
        counts = (
            joined.filter(pl.col(column).is_not_null())
            .group_by(column)
            .len()
            .sort(["len", column], descending=[True, False])
        )
        feature_vocabulary = pl.concat(
            [
                pl.DataFrame({layout.FEATURE_INDEX: [layout.MISSING_FEATURE_INDEX], layout.FEATURE_VALUE: [None]},
                             schema={layout.FEATURE_INDEX: pl.Int32, layout.FEATURE_VALUE: pl.String}),
                counts.select(
                    (pl.int_range(1, pl.len() + 1, dtype=pl.Int32)).alias(layout.FEATURE_INDEX),
                    pl.col(column).cast(pl.String).alias(layout.FEATURE_VALUE),
                ),
            ]
        )
        codes = joined.select(pl.col(column).cast(pl.String)).join(
            feature_vocabulary.rename({layout.FEATURE_VALUE: column}), on=column, how="left", maintain_order="left"
        )[layout.FEATURE_INDEX].fill_null(layout.MISSING_FEATURE_INDEX)
        result.table = result.table.with_columns(codes.cast(pl.Int32).alias(name))
        stats.cardinality = feature_vocabulary.height
        stats.missing = int(joined[column].null_count())
        conflict_column = f"_n_{column}"
        if conflict_column in joined.columns:
            stats.conflicting = int((joined[conflict_column].fill_null(0) > 1).sum())
        result.vocabularies[name] = feature_vocabulary
        result.stats[name] = stats
    return result
