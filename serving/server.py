"""The gRPC server: RecommenderService, the standard health service and reflection.

``start_server`` builds and starts a server on a running event loop and returns it
with its port, so tests bind port 0; ``serve`` runs one process until SIGTERM.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from recsearch.errors import InputError
from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc
from serving.holder import ModelHolder
from serving.model import Limits
from serving.servicer import SERVICE_NAME, RecommenderServicer

logger = logging.getLogger(__name__)

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Methods callable without the bearer token: load balancers check health without
# credentials, and reflection describes only the public schema.
_PUBLIC_PREFIXES = (f"/{HEALTH_SERVICE}/", f"/{reflection.SERVICE_NAME}/")


@dataclass(frozen=True)
class ServerOptions:
    """Everything one server process needs; the CLI builds it from ``recsearch serve``'s flags."""

    model_dir: Path
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    limits: Limits = Limits()
    max_message_bytes: int = 4 * 2**20  # largest request or response accepted
    token: str | None = None  # bearer token every RecommenderService call must send
    tls_cert: Path | None = None
    tls_key: Path | None = None
    reload_interval: float = 2.0  # seconds between checks of model_dir for a new version; 0 disables them
    grace_seconds: float = 10.0  # time in-flight calls get to finish after SIGTERM
    metrics_port: int | None = None
    verify: bool = True  # check every file's sha256 at the first load
    # SO_REUSEPORT, so the worker processes of `--workers N` share one port. Off for a single
    # server, so that binding a port another server uses is an error instead of a silent split of traffic.
    share_port: bool = False

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InputError("TLS needs both --tls-cert and --tls-key; pass both or neither")
        if self.token is not None and not self.token:
            raise InputError("the bearer token is empty; set a non-empty token or none")
        if self.reload_interval < 0 or self.grace_seconds < 0:
            raise InputError("--reload-interval and --grace must not be negative")
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port must be within 0..65535, got {self.port}")


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    holder: ModelHolder


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer TOKEN`` metadata with UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        async def reject(request, context: grpc.aio.ServicerContext):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        self._reject = grpc.unary_unary_rpc_method_handler(reject)

    async def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(_PUBLIC_PREFIXES):
            return await continuation(handler_call_details)
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                supplied = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(supplied, self._expected):
                    return await continuation(handler_call_details)
        return self._reject


def configure_threads() -> None:
    """Keep FAISS to one thread per query: the server's parallelism comes from worker processes."""
    faiss.omp_set_num_threads(1)


async def start_server(options: ServerOptions, holder: ModelHolder) -> RunningServer:
    """Start a server with every service registered, on the running event loop."""
    interceptors = [BearerTokenInterceptor(options.token)] if options.token else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", options.max_message_bytes),
            ("grpc.max_send_message_length", options.max_message_bytes),
            ("grpc.so_reuseport", 1 if options.share_port else 0),
        ],
    )
    pb_grpc.add_RecommenderServiceServicer_to_server(RecommenderServicer(holder), server)
    health = await add_health(server)
    add_reflection(server)

    address = f"{options.host}:{options.port}"
    if ":" in options.host and not options.host.startswith("["):
        address = f"[{options.host}]:{options.port}"
    credentials = None
    if options.tls_cert is not None and options.tls_key is not None:
        credentials = tls_credentials(options.tls_cert, options.tls_key)
    try:
        if credentials is not None:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:
        # A failed bind raises RuntimeError in grpcio 1.85, and other versions may return port 0.
        port = 0
    if port == 0:
        raise InputError(f"could not bind {address}; choose another --host or --port")
    await server.start()
    return RunningServer(server, port, health, holder)


def tls_credentials(cert: Path, key: Path) -> grpc.ServerCredentials:
    """Read the server certificate chain and private key, checking that they are PEM and belong together.

    gRPC itself (grpcio 1.85) reports a bad pair only as a failure to bind the port, so the
    standard library's ssl module checks the pair first. Raises InputError naming both files.
    """

    def reject_encrypted_key() -> str:
        raise InputError(
            f"--tls-key {key} is encrypted, but gRPC reads only unencrypted private keys; "
            f"write one with `openssl pkey -in {key} -out NEW.pem`"
        )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=reject_encrypted_key)
    except (ssl.SSLError, OSError) as exc:
        raise InputError(
            f"--tls-cert {cert} and --tls-key {key} are not a PEM certificate chain and its private key ({exc}); "
            "pass the server's certificate chain and the key it was issued for"
        ) from None
    return grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])


async def add_health(server: grpc.aio.Server) -> health_aio.HealthServicer:
    """Register grpc.health.v1.Health, SERVING for the whole server and for RecommenderService."""
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return health


def add_reflection(server: grpc.aio.Server) -> None:
    reflection.enable_server_reflection((SERVICE_NAME, HEALTH_SERVICE, reflection.SERVICE_NAME), server)


async def reload_loop(holder: ModelHolder, interval: float, wake: asyncio.Event) -> None:
    """Check for a new model version every ``interval`` seconds, or at once when ``wake`` is set."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await asyncio.wait_for(wake.wait(), timeout=interval)
        except asyncio.TimeoutError:
            pass
        wake.clear()
        # Loading runs in a thread, so the event loop keeps responding with the old model meanwhile.
        await loop.run_in_executor(None, holder.reload_if_changed)


async def run_until_stopped(options: ServerOptions, holder: ModelHolder, on_started=None) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting calls and let in-flight ones finish."""
    running = await start_server(options, holder)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    wake = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    loop.add_signal_handler(signal.SIGHUP, wake.set)
    reloader = asyncio.create_task(reload_loop(holder, options.reload_interval, wake)) if options.reload_interval else None
    logger.info(
        "serving model %s on %s:%d", holder.model.version, options.host, running.port,
        extra={"event": "start", "host": options.host, "port": running.port, "pid": os.getpid(),
               "model_version": holder.model.version, "model_dir": str(options.model_dir),
               "event_loop": type(loop).__module__.split(".")[0]},
    )
    if on_started is not None:
        on_started(running.port)

    await stop.wait()
    logger.info("stopping: draining in-flight calls for up to %.0f s", options.grace_seconds,
                extra={"event": "stopping", "pid": os.getpid()})
    await running.health.enter_graceful_shutdown()
    if reloader is not None:
        reloader.cancel()
    # NOTE: gRPC core cancels the calls it has received but not yet handed to a handler when
    # shutdown starts, so under load a few clients get CANCELLED where UNAVAILABLE would be
    # right (https://github.com/grpc/grpc/issues/41785). Calls already in a handler finish.
    await running.server.stop(options.grace_seconds)
    logger.info("stopped", extra={"event": "stop", "pid": os.getpid()})


def serve(options: ServerOptions) -> int:
    """Load the model and serve in this process until SIGTERM; return the exit status."""
    configure_threads()
    holder = ModelHolder(options.model_dir, limits=options.limits, verify=options.verify)
    if options.metrics_port is not None:
        from serving.metrics import start_metrics_server

        start_metrics_server(options.metrics_port, options.host)
    run_event_loop(run_until_stopped(options, holder))
    return 0


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to completion on uvloop where it is installed, else on asyncio's own loop.

    uvloop takes less CPU per call: see the serving section of BENCHMARKS.md.
    """
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


class BackgroundServer:
    """A server on its own event loop in a daemon thread, for tests and benchmarks in one process."""

    def __init__(self, options: ServerOptions, holder: ModelHolder | None = None) -> None:
        configure_threads()
        self.options = options
        self.holder = holder or ModelHolder(options.model_dir, limits=options.limits, verify=options.verify)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._running: RunningServer | None = None
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(timeout=30):
            raise RuntimeError("the background server did not start within 30 s")
        if self._start_error is not None:
            raise self._start_error
        assert self._running is not None
        self.port = self._running.port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._running = await start_server(self.options, self.holder)

        try:
            self._loop.run_until_complete(start())
        except BaseException as exc:  # handed to the constructor, which raises it in the caller's thread
            self._start_error = exc
            self._loop.close()
            return
        finally:
            self._started.set()
        self._loop.run_forever()

    def reload(self) -> str:
        return self.holder.reload_if_changed()

    def stop(self, grace: float | None = 1.0) -> None:
        async def stop() -> None:
            await self._running.health.enter_graceful_shutdown()
            await self._running.server.stop(grace)
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
