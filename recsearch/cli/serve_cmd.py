"""`recsearch serve MODEL_DIR`: the gRPC recommendation server. Imports neither torch nor Lightning."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from recsearch.errors import InputError

TOKEN_VARIABLE = "RECSEARCH_TOKEN"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model directory over gRPC",
        description=(
            "Serve recsearch.v1.RecommenderService, grpc.health.v1.Health and server reflection. "
            "Point MODEL_DIR at a symbolic link to swap models without downtime: the server reloads when "
            "the link moves (or on SIGHUP), and keeps the old model if the new one is invalid. SIGTERM "
            "drains in-flight calls and exits 0. Logs are JSON lines on stderr."
        ),
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="written by `recsearch export`, or a link to one")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50051, help="port to listen on; 0 picks a free one (default: 50051)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes sharing the port; about one per core to use (default: 1)")
    parser.add_argument("--max-k", type=int, default=1_000, help="largest k a request may ask for (default: 1000)")
    parser.add_argument("--max-batch", type=int, default=1_000, help="maximum number of users in one RecommendBatch (default: 1000)")
    parser.add_argument("--max-message-mb", type=float, default=4.0,
                        help="largest request or response in MiB (default: 4)")
    parser.add_argument("--reload-interval", type=float, default=2.0,
                        help="seconds between checks of MODEL_DIR for a new version; 0 turns reloading off (default: 2)")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="seconds in-flight calls get to finish after SIGTERM (default: 10)")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help=f"require 'authorization: Bearer TOKEN' with the token in FILE (or set {TOKEN_VARIABLE})")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain; enables TLS with --tls-key")
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    parser.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics over HTTP on PORT")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the sha256 check of every file at start (faster start of very large models)")
    parser.set_defaults(handler=run)


def read_token(token_file: Path | None) -> str | None:
    if token_file is not None:
        if not token_file.is_file():
            raise InputError(f"token file {token_file} not found")
        return token_file.read_text(encoding="utf-8").strip()
    return os.environ.get(TOKEN_VARIABLE) or None


def run(args: argparse.Namespace) -> int:
    from serving.logs import configure_json_logging
    from serving.model import Limits
    from serving.server import ServerOptions, serve, tls_credentials
    from serving.supervisor import serve_workers

    level = logging.INFO
    if args.quiet:
        level = logging.WARNING
    elif args.verbose >= 2:
        level = logging.DEBUG
    configure_json_logging(level)
    for name, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            raise InputError(f"{name} file {path} not found")
    if args.tls_cert is not None and args.tls_key is not None:
        tls_credentials(args.tls_cert, args.tls_key)  # checked once here, so that no worker starts with a bad pair
    if args.max_k < 1 or args.max_batch < 1 or args.max_message_mb <= 0:
        raise InputError("--max-k, --max-batch and --max-message-mb must be positive")
    options = ServerOptions(
        model_dir=args.model_dir,
        host=args.host,
        port=args.port,
        limits=Limits(max_k=args.max_k, max_batch=args.max_batch),
        max_message_bytes=int(args.max_message_mb * 2**20),
        token=read_token(args.token_file),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        reload_interval=args.reload_interval,
        grace_seconds=args.grace,
        metrics_port=args.metrics_port,
        verify=not args.no_verify,
    )
    if args.workers == 1:
        return serve(options)
    return serve_workers(options, args.workers)
