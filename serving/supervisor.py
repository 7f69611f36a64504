"""Several server processes on one port (SO_REUSEPORT), so requests use more than one core.

Python runs one handler at a time per process, so one process saturates about one core.
Each worker loads the MODEL_DIR itself; the arrays and the index's flat codes are
memory-mapped, so the page cache keeps one copy for all of them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from dataclasses import replace

from recsearch.errors import InputError
from recsearch.model_dir import load_model_dir
from serving.logs import configure_json_logging
from serving.server import ServerOptions

logger = logging.getLogger(__name__)

_START_TIMEOUT = 300.0  # seconds a worker may take to load the model and bind


def _worker_main(options: ServerOptions, number: int, ready, log_level: int) -> None:
    """Entry point of one worker process (started with the spawn method, so nothing is inherited)."""
    from serving.holder import ModelHolder
    from serving.server import configure_threads, run_event_loop, run_until_stopped

    configure_json_logging(log_level)
    configure_threads()
    # The supervisor verified every checksum before starting the workers.
    holder = ModelHolder(options.model_dir, limits=options.limits, verify=False)
    run_event_loop(run_until_stopped(options, holder, on_started=lambda port: ready.set()))


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (but do not listen on) ``host:port`` with SO_REUSEPORT, so port 0 becomes one port for all workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    placeholder = socket.socket(family, socket.SOCK_STREAM)
    placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        placeholder.bind((host, port))
    except OSError as exc:
        placeholder.close()
        raise InputError(f"could not bind {host}:{port} ({exc}); choose another --host or --port") from None
    return placeholder


def serve_workers(options: ServerOptions, n_workers: int) -> int:
    """Start ``n_workers`` server processes on one port and supervise them until SIGTERM; return the exit status."""
    if n_workers < 1:
        raise InputError(f"--workers must be at least 1, got {n_workers}")
    load_model_dir(options.model_dir, verify=options.verify)  # fail here, once, on a bad artifact
    placeholder = reserve_port(options.host, options.port)
    port = placeholder.getsockname()[1]
    options = replace(options, port=port, share_port=True)

    metrics_dir = None
    if options.metrics_port is not None:
        metrics_dir = tempfile.TemporaryDirectory(prefix="recsearch-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    workers = []
    for number in range(n_workers):
        ready = context.Event()
        process = context.Process(
            target=_worker_main, args=(options, number, ready, level), name=f"recsearch-worker-{number}"
        )
        process.start()
        workers.append((process, ready))

    stopping = False

    def forward(signal_number, frame) -> None:
        nonlocal stopping
        stopping = True
        for process, _ in workers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def forward_hup(signal_number, frame) -> None:
        for process, _ in workers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward_hup)

    try:
        deadline = time.monotonic() + _START_TIMEOUT
        for process, ready in workers:
            while not ready.wait(timeout=0.2):
                if not process.is_alive() or time.monotonic() > deadline:
                    logger.error("worker %s failed to start", process.name, extra={"event": "error", "worker": process.name})
                    forward(signal.SIGTERM, None)
                    return 1
        if options.metrics_port is not None:
            from serving.metrics import start_metrics_server

            start_metrics_server(options.metrics_port, options.host)
        logger.info(
            "serving on %s:%d with %d workers", options.host, port, n_workers,
            extra={"event": "start", "host": options.host, "port": port, "pid": os.getpid(),
                   "workers": [process.pid for process, _ in workers]},
        )

        status = 0
        while any(process.is_alive() for process, _ in workers):
            for process, _ in workers:
                process.join(timeout=0.2)
                if not stopping and process.exitcode not in (None, 0):
                    # NOTE: a crashed worker is not restarted: the supervisor stops the others and
                    # exits non-zero, so that the process manager restarts the whole server.
                    logger.error(
                        "worker %s exited with status %s; stopping the others", process.name, process.exitcode,
                        extra={"event": "error", "worker": process.name, "exitcode": process.exitcode},
                    )
                    status = 1
                    forward(signal.SIGTERM, None)
        if status == 0 and any(process.exitcode != 0 for process, _ in workers):
            status = 1
        logger.info("stopped", extra={"event": "stop", "pid": os.getpid()})
        return status
    finally:
        placeholder.close()
        if metrics_dir is not None:
            metrics_dir.cleanup()
