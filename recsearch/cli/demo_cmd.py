"""`recsearch demo`: the whole pipeline on the embedded synthetic click log, ending with a served recommendation."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsearch.cli.progress import console
from recsearch.cli.recommend_cmd import print_response
from recsearch.cli.run_cmd import STOPPED_STATUS, example_user, print_pipeline_summary, run_with_display


def _handle(args: argparse.Namespace) -> int:
    from recsearch.datasets import SYNTHETIC_EVENT_WEIGHTS, SYNTHETIC_ITEM_FEATURES, SyntheticConfig
    from recsearch.datasets import generate_clicklog, write_clicklog
    from recsearch.export import ExportConfig
    from recsearch.ingest import IngestConfig
    from recsearch.pipeline import DATA_DIR, PipelineConfig
    from recsearch.report import ReportConfig
    from recsearch.search import SearchConfig

    out: Path = args.out
    # One log per seed, written once, so running the demo again resumes instead of starting over.
    log_path = out / f"clicks-seed{args.seed}.csv.gz"
    if not log_path.is_file():
        with console.status("generating the synthetic click log"):
            write_clicklog(generate_clicklog(SyntheticConfig(seed=args.seed)), log_path)
        console.print(f"synthetic click log written to {log_path}")
    config = PipelineConfig(
        ingest=IngestConfig(
            input=log_path,
            out=out / DATA_DIR,
            event_weights=dict(SYNTHETIC_EVENT_WEIGHTS),
            item_features=SYNTHETIC_ITEM_FEATURES,
            min_user_interactions=2,
        ),
        search=SearchConfig(n_trials=args.trials, max_epochs=args.max_epochs, seed=args.seed),
        export=ExportConfig(),
        report=ReportConfig(),
    )
    result = run_with_display(out, config, args.verbose)
    if result.stopped_early:
        console.print("search stopped on request; run `recsearch demo` again to continue it")
        return STOPPED_STATUS
    print_pipeline_summary(result)
    if not args.no_serve:
        serve_one_request(result.model_dir)
    console.print(f"serve it with: recsearch serve {result.model_dir} --port 50051", soft_wrap=True, highlight=False)
    return 0


def serve_one_request(model_dir: Path, k: int = 5) -> None:
    """Start the gRPC server on a free loopback port, ask it for one user's top-k, print them, stop it."""
    import grpc

    from serving._proto.recsearch.v1 import recommender_pb2 as pb
    from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc
    from serving.model import Limits
    from serving.server import BackgroundServer, ServerOptions

    user = example_user(model_dir)
    server = BackgroundServer(ServerOptions(model_dir=model_dir, host="127.0.0.1", port=0, limits=Limits(),
                                            reload_interval=0))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            response = pb_grpc.RecommenderServiceStub(channel).Recommend(
                pb.RecommendRequest(user_id=user, k=k), timeout=10
            )
    finally:
        server.stop()
    print_response(response, where=f"served by gRPC on 127.0.0.1:{server.port}: top {k} for ")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on the embedded synthetic click log",
        description="Generate the synthetic e-commerce click log and run `recsearch run` on it: ingest, "
        "search two-tower configurations, score the winner on test beside the baselines, export it, "
        "write the report, then serve one recommendation over gRPC on loopback. Running it again resumes.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the log and the search (default: 0)")
    parser.add_argument("--trials", type=int, default=8, help="search trials (default: 8)")
    parser.add_argument("--max-epochs", type=int, default=8, help="epochs per trial at most (default: 8)")
    parser.add_argument("--no-serve", action="store_true", help="skip the served recommendation at the end")
    parser.set_defaults(handler=_handle)
