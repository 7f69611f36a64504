"""recsearch: recommender AutoML from a click log to a served two-tower model.

The package root imports nothing heavy, so that light consumers (the serving
process, the command-line help) start fast. Stage functions live in their
subpackages: ``recsearch.ingest``, ``recsearch.data`` and the ones that follow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from recsearch.pipeline import PipelineConfig, PipelineHooks, PipelineResult, run, run_pipeline

# The one-call pipeline, imported on first use: ``recsearch.run("clicks.csv", "runs/shop")``.
_PIPELINE_NAMES = ("PipelineConfig", "PipelineHooks", "PipelineResult", "run", "run_pipeline")


def __getattr__(name: str) -> Any:
    if name in _PIPELINE_NAMES:
        from recsearch import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'recsearch' has no attribute {name!r}")
