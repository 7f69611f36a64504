"""Run an architecture search: Optuna proposes configurations, Lightning trains them."""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from lightning.pytorch.callbacks import Callback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from recsearch.data import Dataset, load_dataset
from recsearch.errors import InputError
from recsearch.models import estimate_size
from recsearch.search import study as study_tools
from recsearch.search.leaderboard import pareto_front, select_winner, write_leaderboard
from recsearch.search.refit import RefitResult, refit_winner
from recsearch.search.space import SearchSpace, default_space, load_space, space_from_json
from recsearch.search.suggest import check_fixed_values, seed_trial_params, suggest_config
from recsearch.train import MONITOR, catalog_schema, train_model

logger = logging.getLogger(__name__)

OBJECTIVES = ("ndcg", "params", "bytes")
_SIZE_ATTRIBUTES = {"params": "n_parameters", "bytes": "serving_bytes"}
SEARCH_FILE = "search.json"
TRIALS_DIR = "trials"
WINNER_DIR = "winner"
MAX_FAILURES_IN_A_ROW = 5  # failed trials in a row after which the search stops with an error


@dataclass(frozen=True)
class SearchConfig:
    """Budget, storage, sampler and selection rule of one search."""

    n_trials: int | None = 20  # finished (complete or pruned) trials the study should reach
    timeout: float | None = None  # seconds for this invocation; None: no limit
    storage: str | None = None  # SQLAlchemy URL; None: SQLite inside RUN_DIR
    study_name: str = "recsearch"
    space_file: Path | None = None
    objectives: tuple[str, ...] = ("ndcg",)
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: int = 0
    select: str = "best"
    tolerance: float = 0.01  # relative NDCG tolerance of select="smallest-within"
    max_epochs: int | None = None  # overrides the space's train.max_epochs
    keep_trial_weights: bool = False  # keep every trial's checkpoint, not only the winner's
    refit: bool = True  # retrain the winner on train + validation and score it on test
    final_model: bool = True  # also retrain on every interaction, for export
    baselines: bool = True  # score the baselines on test beside the winner
    trial_timeout: float | None = None  # seconds of training per trial; None: a third of timeout
    heartbeat_seconds: int = study_tools.HEARTBEAT_SECONDS
    grace_seconds: int = study_tools.GRACE_SECONDS  # silence after which a running trial is failed

    def __post_init__(self) -> None:
        if self.n_trials is None and self.timeout is None:
            raise InputError("a search needs a budget: give --trials, --timeout or both")
        if self.n_trials is not None and self.n_trials < 1:
            raise InputError(f"--trials must be at least 1, got {self.n_trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise InputError(f"--timeout must be positive, got {self.timeout}")
        if not self.objectives or self.objectives[0] != "ndcg" or len(self.objectives) > 2:
            raise InputError(
                f"invalid --objective {','.join(self.objectives)}; use ndcg, ndcg,params or ndcg,bytes"
            )
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown:
            raise InputError(f"unknown objectives {unknown}; expected some of {', '.join(OBJECTIVES)}")
        if self.trial_timeout is not None and self.trial_timeout <= 0:
            raise InputError(f"--trial-timeout must be positive, got {self.trial_timeout}")
        if self.heartbeat_seconds < 1 or self.grace_seconds <= self.heartbeat_seconds:
            raise InputError(
                f"the grace period ({self.grace_seconds} s) must exceed the heartbeat interval "
                f"({self.heartbeat_seconds} s, at least 1)"
            )
        if not 0.0 <= self.tolerance < 1.0:
            raise InputError(f"the smallest-within tolerance must be within [0, 1), got {self.tolerance}")


@dataclass
class SearchResult:
    """Output of a search: the study, its counts and the chosen trial."""

    run_dir: Path
    study_name: str
    storage: str  # with any password masked
    counts: dict[str, int]
    winner_number: int
    winner_value: float
    winner_config: dict[str, Any]
    seconds: float
    pareto: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    refit: RefitResult | None = None


def build_space(dataset: Dataset, config: SearchConfig) -> SearchSpace:
    space = default_space(
        tuple(dataset.item_features), dataset.n_items, len(dataset.train), sequence_encoders=torch.cuda.is_available()
    )
    if config.space_file is not None:
        space = load_space(config.space_file, space)
    if config.max_epochs is not None:
        space = space.with_overrides({}, {"train.max_epochs": config.max_epochs})
    unknown = [
        p.split(".")[3] for p in [*space.params, *space.fixed]
        if p.startswith("model.item_tower.features.") and p.split(".")[3] not in dataset.item_features
    ]
    if unknown:
        raise InputError(
            f"the search space names item features {sorted(set(unknown))} that the dataset lacks; "
            f"it has: {', '.join(dataset.item_features) or 'none'}"
        )
    check_fixed_values(space)
    return space


class _StopAfterFailures:
    """Stop the study after ``limit`` failed trials in a row: a search whose every trial fails would never end."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0
        self.tripped = False
        self.last_error = ""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.last_error = str(trial.user_attrs.get("error", "not recorded"))
        if self.in_a_row >= self.limit:
            self.tripped = True
            study.stop()


def _keep_study_params(study: optuna.Study, space: SearchSpace) -> SearchSpace:
    """Keep the parameter ranges and fixed values the study was created with, except where values are fixed now.

    Optuna refuses a parameter whose range changes within a study, so a worker on
    another kind of machine (a CPU worker joining GPU ones) or a resumed search with
    another space file searches the study's ranges, with a warning.
    """
    recorded = study.user_attrs.get("space")
    if not recorded or recorded.get("params") == space.to_json()["params"]:
        return space
    logger.warning(
        "study %r was created with other parameter ranges than this invocation's; searching the study's "
        "(start a new study with --study-name or another --out to search new ranges)", study.study_name,
    )
    study_space = space_from_json(recorded)
    # The values fixed now win over the study's ranges and fixed values, and the study's
    # fixed values stay where this invocation gives none (a resume without the space file).
    fixed = {**study_space.fixed, **space.fixed}
    params = {path: param for path, param in study_space.params.items() if path not in fixed}
    return SearchSpace(params=params, fixed=fixed)


class _KeepStopRequest(Callback):
    """Keep SIGTERM meaning "stop after this trial" while Lightning trains.

    Lightning's Trainer installs its own SIGTERM handler after ``on_fit_start`` (in
    Lightning 2.6), and that handler makes the training loops abort. ``on_train_start``
    runs after it, restores the search's handler and clears a SIGTERM that arrived in
    between; the search's own flag already records that one.
    """

    def __init__(self, stop: study_tools.StopRequest) -> None:
        self.stop = stop

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.stop.reinstall()
        connector = getattr(trainer, "_signal_connector", None)
        if connector is not None and getattr(connector, "received_sigterm", False):
            self.stop.requested.set()
            connector.received_sigterm = False


class _TimeLimit(Callback):
    """Stop a trial's training after ``seconds``, keeping its best epoch so far."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = 0.0
        self.reached = False

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if time.perf_counter() - self.started > self.seconds:
            self.reached = True
            trainer.should_stop = True


def _objective(
    dataset: Dataset, space: SearchSpace, config: SearchConfig, run_dir: Path, stop: study_tools.StopRequest
) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    schema = catalog_schema(dataset)
    multi = len(config.objectives) > 1

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return run_trial(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # Kept on the trial, so the leaderboard and a stopped search can report why it failed.
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:1000])
            raise

    def run_trial(trial: optuna.Trial) -> float | tuple[float, float]:
        from optuna_integration import PyTorchLightningPruningCallback

        run_config = suggest_config(trial, space)
        size = estimate_size(run_config.model, schema)
        trial.set_user_attr("n_parameters", size.n_parameters)
        trial.set_user_attr("serving_bytes", size.serving_bytes)

        callbacks: list[Callback] = [_KeepStopRequest(stop)]
        limit = config.trial_timeout or (config.timeout / 3 if config.timeout else None)
        time_limit = _TimeLimit(limit) if limit else None
        if time_limit is not None:
            callbacks.append(time_limit)
        if not multi:
            callbacks.append(PyTorchLightningPruningCallback(trial, monitor=MONITOR))
        trial_dir = run_dir / TRIALS_DIR / f"trial-{trial.number:05d}"
        try:
            result = train_model(dataset, run_config, trial_dir, callbacks=callbacks, evaluate_test=False)
        except optuna.TrialPruned:
            shutil.rmtree(trial_dir, ignore_errors=True)
            raise
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("epochs_run", result.n_epochs)
        trial.set_user_attr("train_seconds", round(result.train_seconds, 3))
        trial.set_user_attr("validation", result.validation_metrics)
        trial.set_user_attr("run_dir", str(trial_dir))
        trial.set_user_attr("stopped_by_time_limit", bool(time_limit and time_limit.reached))
        if result.best_score is None and time_limit is not None and time_limit.reached:
            raise optuna.TrialPruned(f"the trial reached its {limit:.0f} s time limit before a validation epoch")
        if result.best_score is None or not math.isfinite(result.best_score):
            raise RuntimeError(f"trial {trial.number} produced no finite {MONITOR}")
        if multi:
            return result.best_score, float(trial.user_attrs[_SIZE_ATTRIBUTES[config.objectives[1]]])
        return result.best_score

    return objective


def _counts(study: optuna.Study) -> dict[str, int]:
    counts = {state.name.lower(): 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)}
    for trial in study.get_trials(deepcopy=False):
        key = trial.state.name.lower()
        counts[key] = counts.get(key, 0) + 1
    return counts


def open_study(config: SearchConfig, run_dir: Path, n_startup_trials: int, max_epochs: int) -> optuna.Study:
    url = study_tools.storage_url(config.storage, run_dir)
    storage = study_tools.open_storage(url, config.heartbeat_seconds, config.grace_seconds)
    directions = ["maximize"] + (["minimize"] if len(config.objectives) > 1 else [])
    try:
        existing = optuna.load_study(study_name=config.study_name, storage=storage)
        n_existing = len(existing.trials)
        if list(existing.directions) != [optuna.study.StudyDirection[d.upper()] for d in directions]:
            raise InputError(
                f"study {config.study_name!r} in {study_tools.masked_url(url)} was created with other objectives; "
                "use the same --objective or another --study-name"
            )
    except KeyError:
        n_existing = 0
    seed = study_tools.worker_seed(config.seed, config.storage is not None, n_existing)
    sampler = study_tools.make_sampler(config.sampler, len(directions), seed, n_startup_trials)
    pruner = study_tools.make_pruner(config.pruner, max_epochs)
    return optuna.create_study(
        study_name=config.study_name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        directions=directions,
        load_if_exists=True,
    )


TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def run_search(
    data_dir: str | Path, run_dir: str | Path, config: SearchConfig, on_trial: TrialCallback | None = None
) -> SearchResult:
    """Search configurations on ``data_dir`` until the budget is spent; write results into ``run_dir``.

    Running it again on the same ``run_dir`` (or storage and study name) continues the
    study. ``on_trial`` is called after each trial of this process, for progress display.
    """
    started = time.perf_counter()
    dataset = load_dataset(data_dir)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    space = build_space(dataset, config)
    max_epochs = int(space.fixed.get("train.max_epochs", 20))
    # Random start-up trials before TPE models the results: a third of the budget, 3 to 10.
    n_startup = max(3, min(10, (config.n_trials or 15) // 3))
    study = open_study(config, run_dir, n_startup, max_epochs)
    study.set_user_attr("data_dir", str(Path(data_dir).resolve()))
    space = _keep_study_params(study, space)
    study.set_user_attr("space", space.to_json())
    if not study.trials:
        # Start from configurations known to train well.
        seeds = seed_trial_params(space, ordered=dataset.train.last_time is not None)
        # A budget smaller than the seeds leaves none of them waiting in the study.
        for params in seeds[: config.n_trials]:
            study.enqueue_trial(params, skip_if_exists=True)

    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished_states))
    stopped_early = False
    failures = _StopAfterFailures(MAX_FAILURES_IN_A_ROW)
    with study_tools.StopRequest() as stop:
        if config.n_trials is None or done < config.n_trials:
            callbacks: list[Callable] = [stop.callback, failures] + ([on_trial] if on_trial else [])
            if config.n_trials is not None:
                # Counted over the whole study, so resumed runs and other workers add up.
                callbacks.append(MaxTrialsCallback(config.n_trials, states=finished_states))
            study.optimize(
                _objective(dataset, space, config, run_dir, stop),
                timeout=config.timeout,
                callbacks=callbacks,
                gc_after_trial=True,
                catch=(RuntimeError, InputError, ValueError),
            )
        else:
            logger.info("study %r already has %d finished trials; nothing to run", config.study_name, done)
        stopped_early = stop.requested.is_set()
    if failures.tripped:
        raise InputError(
            f"the last {MAX_FAILURES_IN_A_ROW} trials of study {config.study_name!r} failed, so the search stopped; "
            f"the error of the last one: {failures.last_error}. Fix it (see the log above, and the search space "
            "or data it names), then run the command again to continue the study"
        )

    write_leaderboard(study, run_dir)
    winner = select_winner(study, config.select, config.tolerance)
    has_weights = _keep_winner(study, winner, run_dir, config.keep_trial_weights)
    refit = None
    if stopped_early:
        logger.info("search stopped on request: no refit and no baselines until it is run again")
    elif config.refit and has_weights:
        refit = refit_winner(
            dataset, run_dir, run_dir / WINNER_DIR, winner.user_attrs.get("best_epoch"),
            final=config.final_model, baselines=config.baselines,
        )
    front = [asdict(p) for p in pareto_front(study)] if len(config.objectives) > 1 else []
    result = SearchResult(
        run_dir=run_dir,
        study_name=config.study_name,
        storage=study_tools.masked_url(study_tools.storage_url(config.storage, run_dir)),
        counts=_counts(study),
        winner_number=winner.number,
        winner_value=float(winner.values[0]),
        winner_config=winner.user_attrs["config"],
        seconds=time.perf_counter() - started,
        pareto=front,
        stopped_early=stopped_early,
        refit=refit,
    )
    summary = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result).items() if k != "refit"},
        "objectives": list(config.objectives),
        "select": {"rule": config.select, "tolerance": config.tolerance},
        "sampler": config.sampler,
        "pruner": config.pruner,
        "winner": {
            "number": winner.number,
            "params": winner.params,
            "values": winner.values,
            "best_epoch": winner.user_attrs.get("best_epoch"),
            "validation": winner.user_attrs.get("validation"),
            "n_parameters": winner.user_attrs.get("n_parameters"),
            "serving_bytes": winner.user_attrs.get("serving_bytes"),
        },
    }
    (run_dir / SEARCH_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    logger.info("search done: %s; winner trial %d with %s %.4f", result.counts, winner.number, MONITOR, result.winner_value)
    return result


def _keep_winner(study: optuna.Study, winner: optuna.trial.FrozenTrial, run_dir: Path, keep_all: bool) -> bool:
    """Copy the winner's run directory to RUN_DIR/winner and drop the other trials' checkpoints.

    Returns whether the winner's weights are on this machine.
    """
    source = Path(winner.user_attrs.get("run_dir", ""))
    target = run_dir / WINNER_DIR
    if source.is_dir():
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.ckpt", "checkpoints", "lightning_logs"))
        (target / "trial.json").write_text(
            json.dumps({"number": winner.number, "params": winner.params, "values": winner.values}, indent=2) + "\n",
            encoding="utf-8",
        )
    else:
        # Another worker on another machine ran the winner: its weights are there, not here.
        logger.warning("winner trial %d ran elsewhere (%s); its weights are not here", winner.number, source)
    if not keep_all:
        for checkpoint in (run_dir / TRIALS_DIR).glob("*/**/*.ckpt"):
            checkpoint.unlink(missing_ok=True)
    return source.is_dir()
