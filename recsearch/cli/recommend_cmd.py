"""`recsearch recommend` (ask a running server) and `recsearch recommend-batch` (offline, no server)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from recsearch.cli.progress import console
from recsearch.errors import InputError

_BATCH_USERS = 4_096  # users per vectorised search of recommend-batch


def register(subparsers: argparse._SubParsersAction) -> None:
    client = subparsers.add_parser(
        "recommend",
        help="print recommendations for one user from a running server",
        description="Call Recommend on a running `recsearch serve` and print the items with their scores.",
    )
    client.add_argument("--addr", default="127.0.0.1:50051", metavar="HOST:PORT", help="server address (default: 127.0.0.1:50051)")
    client.add_argument("--user", required=True, metavar="ID", help="user id")
    client.add_argument("--k", type=int, default=10, help="number of items (default: 10)")
    client.add_argument("--recent", nargs="*", default=[], metavar="ITEM", help="the user's latest item ids, oldest first")
    client.add_argument("--include-seen", action="store_true", help="allow items the user interacted with before")
    client.add_argument("--exclude", nargs="*", default=[], metavar="ITEM", help="item ids never to return")
    _add_filter_argument(client)
    client.add_argument("--timeout", type=float, default=5.0, help="deadline of the call in seconds (default: 5)")
    client.add_argument("--tls-ca", type=Path, metavar="PEM", help="CA certificate; connects with TLS")
    client.add_argument("--token-file", type=Path, metavar="FILE",
                        help="bearer token to send (default: the RECSEARCH_TOKEN variable, if set)")
    client.set_defaults(handler=run_client)

    batch = subparsers.add_parser(
        "recommend-batch",
        help="write top-k items for many users to Parquet, without a server",
        description=(
            "Compute top-k recommendations from MODEL_DIR for the users in FILE or for every known user, "
            "with the server's exclusions and filters, and write them as Parquet rows "
            "(user_id, rank, item_id, score, fallback). Users unknown to the model get the popularity ranking."
        ),
    )
    batch.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="written by `recsearch export`")
    users = batch.add_mutually_exclusive_group(required=True)
    users.add_argument("--users", type=Path, metavar="FILE",
                       help="user ids: a text file with one id per line, or CSV/Parquet with a user_id column")
    users.add_argument("--all-users", action="store_true", help="every user known to the model")
    batch.add_argument("--k", type=int, default=10, help="items per user (default: 10)")
    batch.add_argument("--out", type=Path, required=True, metavar="FILE", help="Parquet file to write")
    batch.add_argument("--include-seen", action="store_true", help="allow items the user interacted with before")
    batch.add_argument("--exclude", nargs="*", default=[], metavar="ITEM", help="item ids never to return")
    _add_filter_argument(batch)
    batch.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                       help="FAISS threads for the batched searches (default: all cores)")
    batch.set_defaults(handler=run_batch)


def _add_filter_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--filter", action="append", default=[], metavar="ATTR=V1,V2",
        help="keep items whose ATTR is one of the values; ATTR!=V1,V2 drops them instead; repeat to combine",
    )


def parse_filters(texts: list[str]) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Parse ``attr=v1,v2`` (allowed values) and ``attr!=v1,v2`` (excluded values)."""
    filters = []
    for text in texts:
        excluded = "!=" in text
        attribute, separator, values = text.partition("!=" if excluded else "=")
        if not separator or not attribute or not values:
            raise InputError(f"--filter {text!r} is malformed; write ATTR=V1,V2 or ATTR!=V1,V2")
        parsed = tuple(value.strip() for value in values.split(","))
        filters.append((attribute.strip(), () if excluded else parsed, parsed if excluded else ()))
    return filters


def run_client(args: argparse.Namespace) -> int:
    import grpc

    from serving._proto.recsearch.v1 import recommender_pb2 as pb
    from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc
    from recsearch.cli.serve_cmd import read_token

    request = pb.RecommendRequest(
        user_id=args.user, k=args.k, recent_item_ids=args.recent, include_seen=args.include_seen,
        exclude_item_ids=args.exclude,
        filters=[pb.AttributeFilter(attribute=a, allowed_values=al, excluded_values=ex) for a, al, ex in parse_filters(args.filter)],
    )
    token = read_token(args.token_file)
    metadata = [("authorization", f"Bearer {token}")] if token else None
    if args.tls_ca is not None:
        if not args.tls_ca.is_file():
            raise InputError(f"--tls-ca file {args.tls_ca} not found")
        channel = grpc.secure_channel(args.addr, grpc.ssl_channel_credentials(args.tls_ca.read_bytes()))
    else:
        channel = grpc.insecure_channel(args.addr)
    with channel:
        try:
            response = pb_grpc.RecommenderServiceStub(channel).Recommend(request, timeout=args.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise InputError(f"the server at {args.addr} returned {exc.code().name}: {exc.details()}") from None

    print_response(response)
    return 0


def print_response(response, where: str = "") -> None:
    """Print a RecommendResponse as a table of ranked items with their scores."""
    from rich.table import Table

    title = f"{where}user {response.user_id}, model {response.model_version}"
    if response.fallback:
        title += " (popularity fallback)"
    console.print(title, soft_wrap=True, highlight=False, markup=False)
    table = Table()
    table.add_column("rank", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    for rank, item in enumerate(response.items, start=1):
        table.add_row(str(rank), item.item_id, f"{item.score:.4f}")
    console.print(table)


def read_user_ids(path: Path) -> list[str]:
    """Read user ids from a text file (one per line) or a CSV/Parquet file with a user_id column."""
    import polars as pl

    if not path.is_file():
        raise InputError(f"users file {path} not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv"):
        frame = pl.read_parquet(path) if suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
        if "user_id" not in frame.columns:
            raise InputError(f"users file {path} has no user_id column; its columns are {', '.join(frame.columns)}")
        return [str(value) for value in frame["user_id"].drop_nulls().to_list()]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_batch(args: argparse.Namespace) -> int:
    import faiss
    import numpy as np
    import polars as pl
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from serving.model import AttributeFilter, Limits, Query, RequestError, ServingModel

    if args.k < 1:
        raise InputError(f"--k must be at least 1, got {args.k}")
    if args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    faiss.omp_set_num_threads(args.threads)
    with console.status(f"loading {args.model_dir}"):
        model = ServingModel.load(args.model_dir, limits=Limits(max_k=max(args.k, Limits().max_k), max_ids=max(len(args.exclude), Limits().max_ids)))
    filters = tuple(AttributeFilter(a, al, ex) for a, al, ex in parse_filters(args.filter))

    if args.all_users:
        user_ids = model.arrays.user_ids.tolist()
    else:
        user_ids = read_user_ids(args.users)
    known = np.array([model.user_index.get(user_id, -1) for user_id in user_ids], dtype=np.int64)

    n_rows = len(user_ids)
    items = np.full((n_rows, args.k), -1, dtype=np.int64)
    scores = np.full((n_rows, args.k), np.nan, dtype=np.float32)
    fallback = known < 0
    progress = Progress(
        TextColumn("[bold]recommending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    try:
        with progress:
            task = progress.add_task("users", total=n_rows)
            known_rows = np.flatnonzero(~fallback)
            for start in range(0, len(known_rows), _BATCH_USERS):
                rows = known_rows[start : start + _BATCH_USERS]
                items[rows], scores[rows] = model.recommend_users(
                    known[rows], args.k, include_seen=args.include_seen, filters=filters, exclude_item_ids=tuple(args.exclude)
                )
                progress.advance(task, len(rows))
            unknown_rows = np.flatnonzero(fallback)
            if len(unknown_rows):
                # Every unknown user gets the same popularity ranking, so it is computed once.
                answer = model.recommend(Query("unknown", args.k, include_seen=args.include_seen,
                                               exclude_item_ids=tuple(args.exclude), filters=filters))
                indices = np.array([model.item_index[i] for i in answer.item_ids], dtype=np.int64)
                items[unknown_rows, : len(indices)] = indices
                scores[unknown_rows, : len(indices)] = answer.scores
                progress.advance(task, len(unknown_rows))
    except RequestError as exc:
        raise InputError(exc.message) from None

    present = items >= 0  # (n_rows, k)
    row_of = np.broadcast_to(np.arange(n_rows)[:, None], items.shape)[present]
    frame = pl.DataFrame(
        {
            "user_id": np.asarray(user_ids, dtype=object)[row_of] if n_rows else np.array([], dtype=str),
            "rank": np.broadcast_to(np.arange(1, args.k + 1), items.shape)[present].astype(np.int32),
            "item_id": model.item_ids[items[present]],
            "score": scores[present],
            "fallback": fallback[row_of],
        },
        schema={"user_id": pl.String, "rank": pl.Int32, "item_id": pl.String, "score": pl.Float32, "fallback": pl.Boolean},
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(args.out)
    console.print(
        f"wrote {frame.height:,} recommendations for {n_rows:,} users ({int(fallback.sum()):,} by popularity) "
        f"from model {model.version} to {args.out}"
    )
    return 0
