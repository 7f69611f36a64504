"""Ingestion: turn a raw interaction log into a dataset directory (DATA_DIR)."""

from recsearch.ingest.config import IngestConfig, parse_event_weights
from recsearch.ingest.pipeline import STAGES, IngestResult, ingest
from recsearch.ingest.report import IngestReport

__all__ = ["STAGES", "IngestConfig", "IngestReport", "IngestResult", "ingest", "parse_event_weights"]
