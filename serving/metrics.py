"""Prometheus metrics of the server: requests, latency, fallbacks, errors and reloads.

With several worker processes, the supervisor sets PROMETHEUS_MULTIPROC_DIR before
starting them, so each writes its values there and the supervisor serves their sum.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client import multiprocess

# Upper bounds in seconds, spaced around the sub-millisecond latency of one request.
_LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.5)

REQUESTS = Counter("recsearch_requests", "RPCs answered, by method and status code", ["method", "code"])
LATENCY = Histogram("recsearch_request_seconds", "Time spent in the handler, by method", ["method"], buckets=_LATENCY_BUCKETS)
FALLBACKS = Counter("recsearch_fallbacks", "Users answered by the popularity ranking")
ERRORS = Counter("recsearch_errors", "RPCs that ended with a status other than OK, by method and code", ["method", "code"])
RELOADS = Counter("recsearch_model_reloads", "Attempts to load a new model version, by result", ["result"])


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    """Serve the metrics over HTTP on ``host:port``, summed over worker processes when there are several."""
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    if registry is None:
        start_http_server(port, addr=host)
    else:
        start_http_server(port, addr=host, registry=registry)
