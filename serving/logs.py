"""Structured logs: one JSON object per line on stderr, for log collectors to parse."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

# Attributes every LogRecord has; anything else was passed through ``extra`` and is logged as a field.
_RECORD_ATTRIBUTES = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as JSON with time, level, logger, message and the fields given in ``extra``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send every log record to stderr as JSON lines, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("faiss").setLevel(logging.WARNING)


class RateLimiter:
    """Allows ``max_per_window`` events per key in each window and counts the ones it drops."""

    def __init__(self, max_per_window: int = 20, window_seconds: float = 60.0) -> None:
        self.max_per_window = max_per_window
        self.window_seconds = window_seconds
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}  # key -> (window start, allowed, dropped)

    def allow(self, key: str) -> tuple[bool, int]:
        """Return whether to log this event, and how many of this key were dropped in the previous window."""
        now = time.monotonic()
        with self._lock:
            start, allowed, dropped = self._windows.get(key, (now, 0, 0))
            reported = 0
            if now - start >= self.window_seconds:
                start, allowed, reported, dropped = now, 0, dropped, 0
            if allowed < self.max_per_window:
                self._windows[key] = (start, allowed + 1, dropped)
                return True, reported
            self._windows[key] = (start, allowed, dropped + 1)
            return False, reported
