"""Write a dataset directory atomically: into a temporary sibling, then rename into place."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from recsearch.errors import InputError

logger = logging.getLogger(__name__)


def check_output(out: Path, overwrite: bool) -> None:
    """Fail before any work if ``out`` exists and may not be replaced."""
    if out.exists() and not overwrite:
        raise InputError(f"output {out} already exists; pass --overwrite to replace it or choose another --out")
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a directory; remove it or choose another --out")


@contextmanager
def staged_directory(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary directory beside ``out`` and move it to ``out`` on success.

    On any error the temporary directory is removed and ``out`` is left as it was.
    """
    check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield staging
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, retired / out.name)
            os.replace(staging, out)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, compression="zstd", statistics=True)


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
