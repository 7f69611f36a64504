"""The whole pipeline in one call: ingest, search (with refit and baselines), export and report.

Each stage records its end in ``OUT/pipeline.json`` with a fingerprint of its settings
and of its input: the log's content for ingestion, the dataset's fingerprint for the
search, and the record of the stage before for export and report. Running the same
pipeline again skips every stage whose fingerprint still matches and whose files are
still there. A search that has not reached its trial budget continues its Optuna
study, and a search on a changed dataset starts afresh.

Layout of ``OUT``::

    data/              DATA_DIR written by ingestion
    run/               RUN_DIR of the search: study.db, leaderboard, winner, refit, final
    run/model/         MODEL_DIR exported for serving
    run/report.html    the offline report (with report.json and report.md beside it)
    pipeline.json      the stages finished, their fingerprints, seconds and peak memory
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recsearch.errors import InputError
from recsearch.export import ExportConfig
from recsearch.ingest import IngestConfig
from recsearch.model_dir import sha256_of
from recsearch.report import ReportConfig
from recsearch.search import SearchConfig
from recsearch.search.study import masked_url

logger = logging.getLogger(__name__)

STAGES = ("ingest", "search", "export", "report")
STATE_FILE = "pipeline.json"
LOCK_FILE = ".lock"
DATA_MARKER = "dataset.fingerprint"  # inside RUN_DIR: the dataset its study was scored on
STATE_VERSION = 1
DATA_DIR = "data"
RUN_DIR = "run"
MODEL_DIR = "model"  # inside RUN_DIR, where the report looks for it
# Names of the staging folders of recsearch.ingest.writer and recsearch.model_dir: tempfile's
# 8 random characters, or 8 hex digits.
_STAGING_NAME = re.compile(rf"\.(?:{DATA_DIR}|{MODEL_DIR})\.(?:tmp|old)-[a-z0-9_]{{8}}")
REPORT_FILE = "report.html"  # inside RUN_DIR

StageCallback = Callable[[str, str], None]  # (stage, "start" | "skip" | "done")


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of every stage. ``ingest.out`` is replaced by ``OUT/data``."""

    ingest: IngestConfig
    search: SearchConfig = field(default_factory=SearchConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


@dataclass(frozen=True)
class PipelineHooks:
    """Optional progress callbacks, for a terminal or a notebook."""

    stage: StageCallback | None = None
    ingest_step: Callable[[str], None] | None = None  # each step inside ingestion
    trial: Callable[..., None] | None = None  # Optuna's (study, trial) after each trial


@dataclass
class StageRecord:
    """One finished stage: when, how long, the process's peak memory so far, and what it made."""

    fingerprint: str
    finished_at: str
    seconds: float
    peak_rss_mib: float
    skipped: bool = False  # True in a result when this run found the stage already done
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    """Paths of every output, and the stages of this run."""

    out: Path
    data_dir: Path
    run_dir: Path
    model_dir: Path
    report_html: Path
    stages: dict[str, StageRecord]
    stopped_early: bool = False  # the search was asked to stop; later stages did not run

    @property
    def evaluation(self) -> dict[str, Any]:
        """The test metrics of the winner, its refit and the baselines (``run/evaluation.json``)."""
        path = self.run_dir / "evaluation.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value.resolve())
    return value


def _content_digest(path: Path) -> list[tuple[str, str]]:
    """Return the name and sha256 of the input file, or of every file of an input folder.

    Content, not size and modification time: a touched file is the same log, and a file
    copied with its time kept (cp -p, rsync -t) may be another one.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    elif path.exists():
        files = [path]
    else:
        raise InputError(f"input {path} not found; give a log file or a folder of log parts")
    return [(p.relative_to(path).as_posix() if path.is_dir() else p.name, sha256_of(p)) for p in files]


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(_jsonable(list(parts)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def ingest_fingerprint(config: IngestConfig) -> str:
    """Return the fingerprint of the ingestion settings and the content of every input file."""
    inputs = [_content_digest(config.input)]
    for table in (config.items_file, config.users_file):
        if table is not None:
            inputs.append(_content_digest(table))
    settings = dataclasses.replace(config, input=Path("."), out=Path("."), overwrite=False)
    return _fingerprint(settings, inputs)


def search_fingerprint(config: SearchConfig, data_fingerprint: str) -> str:
    """Return the fingerprint of the search settings that shape its result, the space file's text and the dataset.

    The timeout and the heartbeat settings are left out: they change how long an
    invocation searches, not what a finished search finds.
    """
    settings = _jsonable(config)
    for name in ("timeout", "heartbeat_seconds", "grace_seconds", "space_file"):
        settings.pop(name)
    space_text = config.space_file.read_text(encoding="utf-8") if config.space_file is not None else None
    return _fingerprint(settings, space_text, data_fingerprint)


def read_state(out: Path) -> dict[str, Any]:
    """Return the recorded stages of ``out``, or an empty record when there is none."""
    path = out / STATE_FILE
    if not path.is_file():
        return {"version": STATE_VERSION, "stages": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is unreadable ({exc}); delete it to run every stage again") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION or not isinstance(state.get("stages"), dict):
        raise InputError(f"{path} is not a recsearch pipeline record of version {STATE_VERSION}; delete it to start over")
    return state


def _write_state(out: Path, state: dict[str, Any]) -> None:
    path = out / STATE_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


class _Pipeline:
    def __init__(self, out: Path, config: PipelineConfig, hooks: PipelineHooks) -> None:
        self.out = out
        self.config = config
        self.hooks = hooks
        self.data_dir = out / DATA_DIR
        self.run_dir = out / RUN_DIR
        self.model_dir = self.run_dir / MODEL_DIR
        self.report_html = self.run_dir / REPORT_FILE
        self.state = read_state(out)
        self.records: dict[str, StageRecord] = {}

    def _notify(self, stage: str, event: str) -> None:
        if self.hooks.stage is not None:
            self.hooks.stage(stage, event)

    def fingerprint(self, stage: str) -> str:
        """Return the fingerprint of a stage's settings and of what the stage before it made.

        Computed just before the stage, after the earlier ones ran: a stage reruns when
        its input changed, not merely because an earlier stage ran again.
        """
        if stage == "ingest":
            return ingest_fingerprint(self.config.ingest)
        if stage == "search":
            return search_fingerprint(self.config.search, self.data_fingerprint())
        previous = self.records[STAGES[STAGES.index(stage) - 1]]
        config = self.config.export if stage == "export" else self.config.report
        return _fingerprint(config, previous.fingerprint, previous.finished_at)

    def data_fingerprint(self) -> str:
        manifest = json.loads((self.data_dir / "dataset.json").read_text(encoding="utf-8"))
        return str(manifest["fingerprint"])

    def outputs(self, stage: str) -> list[Path]:
        """Return the files a finished stage leaves, whose absence makes it run again."""
        if stage == "ingest":
            return [self.data_dir / "dataset.json"]
        if stage == "search":
            files = [self.run_dir / "search.json", self.run_dir / "winner" / "model.pt"]
            return files + ([self.run_dir / "evaluation.json"] if self.config.search.refit else [])
        if stage == "export":
            return [self.model_dir / "manifest.json"]
        return [self.report_html.with_suffix(suffix) for suffix in (".html", ".json", ".md")]

    def is_done(self, stage: str, fingerprint: str) -> bool:
        recorded = self.state["stages"].get(stage)
        if not recorded or recorded.get("fingerprint") != fingerprint:
            return False
        missing = [path for path in self.outputs(stage) if not path.exists()]
        if missing:
            logger.warning("stage %s was done, but %s is missing; running it again", stage, missing[0])
            return False
        budget = self.config.search.n_trials
        if stage == "search" and budget is not None and recorded["summary"].get("finished_trials", 0) < budget:
            logger.info("the search has %d of %d trials; continuing it", recorded["summary"].get("finished_trials", 0), budget)
            return False
        return True

    def run_stage(self, stage: str, body: Callable[[], dict[str, Any]]) -> None:
        fingerprint = self.fingerprint(stage)
        if self.is_done(stage, fingerprint):
            record = StageRecord(**{**self.state["stages"][stage], "skipped": True})
            self.records[stage] = record
            logger.info("stage %s already done (%s); skipping it", stage, record.finished_at)
            self._notify(stage, "skip")
            return
        self._notify(stage, "start")
        started = time.perf_counter()
        summary = body()
        record = StageRecord(
            fingerprint=fingerprint,
            finished_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            seconds=round(time.perf_counter() - started, 3),
            peak_rss_mib=round(peak_rss_mib(), 1),
            summary=summary,
        )
        self.records[stage] = record
        stored = dataclasses.asdict(record)
        stored.pop("skipped")
        self.state["stages"][stage] = stored
        _write_state(self.out, self.state)
        self._notify(stage, "done")

    def ingest(self) -> dict[str, Any]:
        from recsearch.ingest import ingest

        config = dataclasses.replace(self.config.ingest, out=self.data_dir, overwrite=True)
        result = ingest(config, on_stage=self.hooks.ingest_step)
        manifest = result.manifest
        return {
            "rows_read": result.report.rows_read,
            "n_users": manifest.get("n_users"),
            "n_items": manifest.get("n_items"),
            "n_interactions": manifest.get("n_interactions"),
            "split": manifest.get("split", {}).get("kind"),
        }

    def search(self) -> dict[str, Any] | None:
        from recsearch.search import run_search

        self._forget_search_on_other_data()
        result = run_search(self.data_dir, self.run_dir, self.config.search, on_trial=self.hooks.trial)
        if result.stopped_early:
            return None
        summary: dict[str, Any] = {
            "trials": result.counts,
            "finished_trials": result.counts.get("complete", 0) + result.counts.get("pruned", 0),
            "winner_trial": result.winner_number,
            "winner_validation_ndcg@10": result.winner_value,
        }
        if result.refit is not None:
            best = result.refit.best_baseline
            summary.update({
                "winner_test_ndcg@10": result.refit.winner_test.get("ndcg@10"),
                "refit_test_ndcg@10": result.refit.refit_test.get("ndcg@10"),
                "best_baseline": best[0] if best else None,
                "best_baseline_test_ndcg@10": best[1] if best else None,
                "baselines_not_beaten": result.refit.not_beaten,
            })
        return summary

    def _forget_search_on_other_data(self) -> None:
        """Remove a study scored on another version of the dataset, so the search starts afresh on this one."""
        marker = self.run_dir / DATA_MARKER
        current = self.data_fingerprint()
        previous = marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
        if previous is not None and previous != current:
            if self.config.search.storage is None:
                logger.warning("the dataset changed; removing the search of the old one in %s", self.run_dir)
                shutil.rmtree(self.run_dir)
            else:
                logger.warning(
                    "the dataset changed; study %r in %s continues, and its earlier trials were scored on the old "
                    "data (use another --study-name to start afresh)", self.config.search.study_name,
                    masked_url(self.config.search.storage),
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(current + "\n", encoding="utf-8")

    def export(self) -> dict[str, Any]:
        from recsearch.export import export_model

        config = dataclasses.replace(self.config.export, overwrite=True)
        manifest = export_model(self.run_dir, self.model_dir, config)
        index = manifest.get("index", {})
        return {
            "model_version": manifest.get("model_version"),
            "index_kind": index.get("kind"),
            "index_recall@10": index.get("recall_at_10"),
            "index_latency_us": index.get("search_latency_us"),
        }

    def report(self) -> dict[str, Any]:
        from recsearch.report import build_report, write_report

        config = self.config.report
        if config.model_dir is None:
            config = dataclasses.replace(config, model_dir=self.model_dir)
        report = build_report(self.run_dir, config)
        paths = write_report(report, self.report_html)
        return {"paths": {kind: str(path) for kind, path in paths.items()}, "verdict": report.comparison.verdict}

    def result(self, stopped_early: bool = False) -> PipelineResult:
        return PipelineResult(
            out=self.out, data_dir=self.data_dir, run_dir=self.run_dir, model_dir=self.model_dir,
            report_html=self.report_html, stages=self.records, stopped_early=stopped_early,
        )


def run_pipeline(out: str | Path, config: PipelineConfig, hooks: PipelineHooks | None = None) -> PipelineResult:
    """Run every stage not yet done for ``config`` into ``out``; return where the results are."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"output folder {out} is a file, or inside one; give a folder path to --out") from None
    with _exclusive(out):
        return _run_locked(out, config, hooks or PipelineHooks())


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` so that two pipelines never write the same folder."""
    import fcntl

    with (out / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"another recsearch run is writing {out} (it locked {out / LOCK_FILE}); wait for it to end "
                "or give another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_staging_leftovers(out: Path) -> None:
    """Delete the staging folders that a killed ingestion or export left in ``out``.

    Both stages write into a hidden ``.NAME.tmp-XXXXXXXX`` folder, move the previous
    output aside to ``.NAME.old-XXXXXXXX`` and rename the new one into place, so a process
    killed on the way leaves either behind. Only real folders with exactly such a name are
    removed. The caller holds the lock on ``out``, so no other ``recsearch run`` is writing them.
    """
    candidates = [*out.glob(f".{DATA_DIR}.*-*"), *(out / RUN_DIR).glob(f".{MODEL_DIR}.*-*")]
    leftovers = [
        path for path in candidates
        if _STAGING_NAME.fullmatch(path.name) and path.is_dir() and not path.is_symlink()
    ]
    for path in leftovers:
        shutil.rmtree(path)
    if leftovers:
        logger.info("removed %d staging folders left by an interrupted run: %s",
                    len(leftovers), ", ".join(str(path) for path in leftovers))


def _run_locked(out: Path, config: PipelineConfig, hooks: PipelineHooks) -> PipelineResult:
    source = config.ingest.input.resolve()
    if source.is_dir() and out.resolve().is_relative_to(source):
        raise InputError(f"output folder {out} is inside the input folder {config.ingest.input}; put it elsewhere")
    _remove_staging_leftovers(out)
    pipeline = _Pipeline(out, config, hooks)
    pipeline.run_stage("ingest", pipeline.ingest)

    def search() -> dict[str, Any]:
        summary = pipeline.search()
        if summary is None:
            raise _Stopped
        return summary

    try:
        pipeline.run_stage("search", search)
    except _Stopped:
        logger.info("search stopped on request; run the same pipeline again to continue it")
        return pipeline.result(stopped_early=True)
    pipeline.run_stage("export", pipeline.export)
    pipeline.run_stage("report", pipeline.report)
    return pipeline.result()


class _Stopped(Exception):
    """The search stopped on request before its budget was spent."""


def run(
    input: str | Path,
    out: str | Path,
    *,
    ingest: IngestConfig | dict[str, Any] | None = None,
    search: SearchConfig | None = None,
    export: ExportConfig | None = None,
    report: ReportConfig | None = None,
    hooks: PipelineHooks | None = None,
) -> PipelineResult:
    """From a click log to an exported model and its report, resuming whatever ``out`` already holds.

    ``ingest`` takes an ``IngestConfig`` (its ``input`` and ``out`` are replaced) or a
    dict of its fields, e.g. ``{"preset": "movielens"}``.

    >>> import recsearch
    >>> result = recsearch.run("clicks.csv", "runs/shop", search=SearchConfig(n_trials=20))  # doctest: +SKIP
    >>> result.model_dir, result.report_html  # doctest: +SKIP
    """
    out = Path(out)
    if isinstance(ingest, IngestConfig):
        ingest_config = dataclasses.replace(ingest, input=Path(input), out=out / DATA_DIR)
    else:
        options = dict(ingest or {})
        unknown = set(options) - {f.name for f in dataclasses.fields(IngestConfig)}
        if unknown:
            raise InputError(f"unknown ingestion options {sorted(unknown)}; see recsearch.ingest.IngestConfig")
        options.pop("input", None)
        options.pop("out", None)
        ingest_config = IngestConfig(input=Path(input), out=out / DATA_DIR, **options)
    config = PipelineConfig(
        ingest=ingest_config,
        search=search or SearchConfig(),
        export=export or ExportConfig(),
        report=report or ReportConfig(),
    )
    return run_pipeline(out, config, hooks)
