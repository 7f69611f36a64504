"""The model a server uses for its responses, swapped for a new version without failing a request.

Each request reads ``holder.model`` once and uses that object to the end, so a swap in
between changes only later requests; the old model is freed when its last request ends.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from recsearch.errors import RecsearchError
from recsearch.model_dir import MANIFEST_FILE
from serving import metrics
from serving.model import Limits, ServingModel

logger = logging.getLogger(__name__)


class ModelHolder:
    """Loads the MODEL_DIR at ``path`` and reloads it when the path points at a new version.

    ``path`` is typically a symbolic link such as ``models/current``, switched atomically
    to a new export. A version that fails to load is rejected, logged and not retried
    until the path changes again; the running model keeps serving.
    """

    def __init__(self, path: str | Path, *, limits: Limits = Limits(), verify: bool = True) -> None:
        self.path = Path(path)
        self.limits = limits
        signature = self._signature()
        self.model = ServingModel.load(signature[0], limits=limits, verify=verify)
        self._loaded = (signature[0], self.model.version)
        self._rejected: tuple[str, str | None] | None = None

    def _signature(self) -> tuple[str, str | None]:
        """Return the resolved directory and the model version its manifest names (None when unreadable)."""
        resolved = os.path.realpath(self.path)
        try:
            version = json.loads((Path(resolved) / MANIFEST_FILE).read_text(encoding="utf-8")).get("model_version")
        except (OSError, ValueError, AttributeError):
            version = None
        return resolved, version

    def reload_if_changed(self) -> str:
        """Load the version at ``path`` when it differs from the loaded one; return "unchanged", "reloaded" or "rejected"."""
        signature = self._signature()
        if signature == self._loaded or signature == self._rejected:
            return "unchanged"
        previous = self.model.version
        try:
            model = ServingModel.load(signature[0], limits=self.limits)
        except (RecsearchError, OSError, ValueError, RuntimeError) as exc:
            self._rejected = signature
            metrics.RELOADS.labels("rejected").inc()
            logger.error(
                "rejected the model at %s: %s; still serving version %s", signature[0], exc, previous,
                extra={"event": "reload_rejected", "model_dir": signature[0], "model_version": previous},
            )
            return "rejected"
        self.model = model  # one reference assignment: requests see the old or the new model, never a mix
        self._loaded = (signature[0], model.version)
        self._rejected = None
        metrics.RELOADS.labels("reloaded").inc()
        logger.info(
            "reloaded: now serving version %s from %s (was %s)", model.version, signature[0], previous,
            extra={"event": "reload", "model_dir": signature[0], "model_version": model.version, "previous_version": previous},
        )
        return "reloaded"
