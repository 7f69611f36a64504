"""`recsearch run INPUT --out DIR`: ingest, search, refit, evaluate, export and report in one command."""

from __future__ import annotations

import argparse
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from recsearch.cli.export_cmd import add_index_options, index_config_from_args
from recsearch.cli.ingest_cmd import add_ingest_options, ingest_config_from_args
from recsearch.cli.progress import console, key_value_table, stage_progress
from recsearch.cli.search_cmd import add_search_options, search_config_from_args, search_progress

# Exit status of a run stopped before its model exists, so `recsearch run ... && deploy` stops too.
STOPPED_STATUS = 130

# The pipeline's stages in order, with what each does; kept here so that `recsearch --help` imports no torch.
_TITLES = {
    "ingest": "ingest the log",
    "search": "search configurations, refit the winner, score the baselines",
    "export": "export the model and its FAISS index",
    "report": "write the offline report",
}


class StageDisplay:
    """Rich progress for each stage of the pipeline, driven by its callbacks."""

    def __init__(self, n_trials: int | None) -> None:
        self.n_trials = n_trials
        self._stack: ExitStack | None = None
        self._ingest_step = None
        self._trial = None

    def ingest_step(self, name: str) -> None:
        if self._ingest_step is not None:
            self._ingest_step(name)

    def trial(self, study, trial) -> None:
        if self._trial is not None:
            self._trial(study, trial)

    def stage(self, stage: str, event: str) -> None:
        number = f"[{list(_TITLES).index(stage) + 1}/{len(_TITLES)}]"
        if event == "skip":
            console.print(f"{number} {stage}: already done, skipped")
            return
        if event == "start":
            console.print(f"[bold]{number} {stage}[/]: {_TITLES[stage]}")
            self._stack = ExitStack()
            if stage == "ingest":
                from recsearch.ingest import STAGES

                self._ingest_step = self._stack.enter_context(stage_progress("ingest", STAGES))
            elif stage == "search":
                self._trial = self._stack.enter_context(search_progress(self.n_trials))
            else:
                self._stack.enter_context(console.status(f"{stage} running"))
            return
        self.close()

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self._ingest_step = None
        self._trial = None


def run_with_display(out: Path, config, verbose: int = 0):
    """Run the pipeline with progress on the terminal; return its result."""
    from recsearch.pipeline import PipelineHooks, run_pipeline

    if verbose < 1:
        logging.getLogger("optuna").setLevel(logging.WARNING)
    display = StageDisplay(config.search.n_trials)
    hooks = PipelineHooks(stage=display.stage, ingest_step=display.ingest_step, trial=display.trial)
    try:
        return run_pipeline(out, config, hooks)
    finally:
        display.close()


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "n/a"


def print_pipeline_summary(result) -> None:
    rows: list[tuple[str, object]] = []
    for stage, record in result.stages.items():
        when = "done earlier" if record.skipped else "ran now"
        rows.append((f"{stage} ({when})", f"{record.seconds:,.1f} s, peak {record.peak_rss_mib:,.0f} MiB"))
    ingest = result.stages.get("ingest")
    if ingest is not None:
        data = ingest.summary
        rows.append(("dataset", f"{data.get('n_users', 0):,} users, {data.get('n_items', 0):,} items, "
                                f"{data.get('n_interactions', 0):,} interactions, {data.get('split')} split"))
    search = result.stages.get("search")
    if search is not None:
        summary = search.summary
        rows.append(("winner trial", summary.get("winner_trial")))
        rows.append(("winner test NDCG@10 (trained on train)", _number(summary.get("winner_test_ndcg@10"))))
        rows.append(("winner test NDCG@10 (refit on train + validation)", _number(summary.get("refit_test_ndcg@10"))))
        if summary.get("best_baseline"):
            rows.append((f"best baseline: {summary['best_baseline']}", _number(summary.get("best_baseline_test_ndcg@10"))))
            not_beaten = summary.get("baselines_not_beaten") or []
            # Baselines are fitted on train only, so the fair comparison is the winner trained on train.
            rows.append(("verdict (winner trained on train)",
                         "beats every baseline" if not not_beaten else f"does not beat {', '.join(not_beaten)}"))
    export = result.stages.get("export")
    if export is not None:
        info = export.summary
        rows.append(("model", f"{result.model_dir} ({info.get('model_version')})"))
        rows.append(("index", f"{info.get('index_kind')}, recall@10 {_number(info.get('index_recall@10'), 3)}"))
    if "report" in result.stages:
        rows.append(("report", str(result.report_html)))
    console.print(key_value_table(f"recsearch run {result.out}", rows))


def example_user(model_dir: Path) -> str:
    """Return the first known user of an exported model, for the example request."""
    import numpy as np

    from recsearch import model_dir as md

    users = np.load(model_dir / md.USER_IDS, allow_pickle=False, mmap_mode="r")
    return str(users[0]) if len(users) else "some-user"


def grpcurl_line(address: str, user_id: str, k: int = 10) -> str:
    body = '{"user_id": "%s", "k": %d}' % (user_id.replace('"', '\\"'), k)
    return f"grpcurl -plaintext -d '{body}' {address} recsearch.v1.RecommenderService/Recommend"


def _handle(args: argparse.Namespace) -> int:
    from recsearch.export import ExportConfig
    from recsearch.pipeline import DATA_DIR, PipelineConfig
    from recsearch.report import ReportConfig

    search = search_config_from_args(args)
    config = PipelineConfig(
        ingest=ingest_config_from_args(args, args.input, args.out / DATA_DIR),
        search=search,
        export=ExportConfig(index=index_config_from_args(args)),
        report=ReportConfig(storage=search.storage, n_resamples=args.resamples),
    )
    result = run_with_display(args.out, config, args.verbose)
    if result.stopped_early:
        console.print("search stopped on request; run the same command again to continue it")
        return STOPPED_STATUS
    print_pipeline_summary(result)
    if not args.serve:
        console.print(f"serve it with: recsearch serve {result.model_dir} --port {args.port}",
                      soft_wrap=True, highlight=False, markup=False)
        return 0
    return serve_model(result.model_dir, args.host, args.port, args.workers)


def serve_model(model_dir: Path, host: str, port: int, workers: int) -> int:
    """Serve ``model_dir`` until SIGTERM or Ctrl-C, after printing how to query it."""
    from serving.model import Limits
    from serving.server import ServerOptions, serve
    from serving.supervisor import serve_workers

    options = ServerOptions(model_dir=model_dir, host=host, port=port, limits=Limits())
    console.print(f"serving {model_dir} on {host}:{port}; try it with:")
    user = example_user(model_dir)
    console.print(grpcurl_line(f"{host}:{port}", user), soft_wrap=True, highlight=False, markup=False)
    console.print(f"or: recsearch recommend --addr {host}:{port} --user {user}",
                  soft_wrap=True, highlight=False, markup=False)
    if workers == 1:
        return serve(options)
    return serve_workers(options, workers)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="click log in, tuned model, report and endpoint out: every stage in one command",
        description=(
            "Ingest INPUT, search two-tower configurations, refit the winner and score it on test beside "
            "the baselines, export it with its FAISS index and write the report, all under DIR. Running "
            "the same command again skips the stages already done and continues an unfinished search; "
            "changing a stage's options reruns that stage and the ones after it."
        ),
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="log file (CSV, TSV, Parquet, NDJSON, gzip) or folder of parts")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="output folder: data/, run/ (study, winner, model/, report.html) and pipeline.json")
    add_ingest_options(parser, with_seed=False)
    add_search_options(parser)
    add_index_options(parser)
    report = parser.add_argument_group("report")
    report.add_argument("--resamples", type=int, default=1_000, metavar="N",
                        help="bootstrap resamples of the test users for the report's intervals (default: 1000)")
    serve = parser.add_argument_group("serving")
    serve.add_argument("--serve", action="store_true", help="serve the exported model at the end, until Ctrl-C or SIGTERM")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on with --serve (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=50051, help="port to listen on with --serve (default: 50051)")
    serve.add_argument("--workers", type=int, default=1, help="server processes with --serve (default: 1)")
    parser.set_defaults(handler=_handle)
