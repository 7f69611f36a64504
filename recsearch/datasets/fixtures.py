"""Ready-made dataset directories from the synthetic log, for tests, demos and benchmarks."""

from __future__ import annotations

import tempfile
from pathlib import Path

from recsearch.datasets.synthetic import SyntheticConfig, generate_clicklog, write_clicklog

SYNTHETIC_EVENT_WEIGHTS = {"view": 1.0, "addtocart": 3.0, "purchase": 5.0}
SYNTHETIC_ITEM_FEATURES = ("category", "brand")


def make_synthetic_dataset(
    out_dir: str | Path,
    config: SyntheticConfig | None = None,
    split: str = "leave-last-out",
    overwrite: bool = True,
) -> Path:
    """Generate a synthetic click log and ingest it into ``out_dir``; return ``out_dir``.

    Events weigh view=1, addtocart=3, purchase=5; items carry the category and brand
    features.
    """
    # Imported here so that the generator stays usable without the ingest stage's imports.
    from recsearch.ingest import IngestConfig, ingest

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="recsearch-synthetic-") as scratch:
        log_path = write_clicklog(generate_clicklog(config or SyntheticConfig()), Path(scratch) / "clicks.parquet")
        ingest(
            IngestConfig(
                input=log_path,
                out=out_dir,
                event_weights=dict(SYNTHETIC_EVENT_WEIGHTS),
                item_features=SYNTHETIC_ITEM_FEATURES,
                split=split,
                overwrite=overwrite,
            )
        )
    return out_dir
