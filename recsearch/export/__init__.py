"""Export of a trained run to a MODEL_DIR: vectors, FAISS index, ONNX user tower and manifest.

The MODEL_DIR format itself lives in ``recsearch.model_dir``, which the server shares.
"""

from recsearch.export.index import IndexChoice, IndexConfig, build_index, recall_at_k
from recsearch.export.pipeline import ExportConfig, export_model, find_model_run

__all__ = [
    "ExportConfig",
    "IndexChoice",
    "IndexConfig",
    "build_index",
    "export_model",
    "find_model_run",
    "recall_at_k",
]
