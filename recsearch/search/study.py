"""Optuna study plumbing: storage, samplers, pruners and the stop-after-this-trial signal."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import warnings
from pathlib import Path
from types import FrameType

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

try:  # Optuna 4.9 renamed the retry callback and its RDBStorage argument.
    from optuna.storages import RetryHeartbeatStaleTrialCallback as _RetryCallback

    _RETRY_ARGUMENT = "heartbeat_stale_trial_callback"
except ImportError:  # Optuna before 4.9
    from optuna.storages import RetryFailedTrialCallback as _RetryCallback

    _RETRY_ARGUMENT = "failed_trial_callback"

from recsearch.errors import InputError

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("hyperband", "median", "none")
# The hyperband and median pruners also stop a trial whose best score so far is below this
# share of the best score that a completed trial had reached by the same epoch. It is low
# because model families learn at different speeds. On the demo's log the default
# configuration scored 0.056 after its first epoch and 0.199 at the end, and the
# autoencoder 0.213 after one.
FLOOR_SHARE = 0.25
STUDY_FILE = "study.db"
# A worker whose trial has not beaten for GRACE_SECONDS is taken as dead: the trial
# is failed and retried up to MAX_RETRIES times with the same parameters.
# NOTE: Optuna finds stale trials by their last heartbeat, so a worker killed before its
# trial's first heartbeat leaves that trial RUNNING; it then counts as neither done nor retried.
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 30
MAX_RETRIES = 2


def storage_url(storage: str | None, run_dir: Path) -> str:
    return storage or f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"


def masked_url(url: str) -> str:
    """Return ``url`` with any password replaced by ***, for logs and reports."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def open_storage(url: str, heartbeat_seconds: int = HEARTBEAT_SECONDS, grace_seconds: int = GRACE_SECONDS) -> RDBStorage:
    """Open an RDB storage with heartbeats, so trials of killed workers are failed and retried."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    with warnings.catch_warnings():
        # Heartbeats and the retry callback are marked experimental in Optuna 4 and 5.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = _RetryCallback(max_retry=MAX_RETRIES)
        return _rdb_storage(url, engine_kwargs, heartbeat_seconds, grace_seconds, retry)


def _rdb_storage(url: str, engine_kwargs: dict, heartbeat_seconds: int, grace_seconds: int, retry: object) -> RDBStorage:
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_seconds,
            grace_period=grace_seconds,
            **{_RETRY_ARGUMENT: retry},
        )
    except (ImportError, ModuleNotFoundError) as exc:
        raise InputError(
            f"cannot open study storage {masked_url(url)}: {exc}. For PostgreSQL install a driver: "
            "pip install 'recsearch[postgres]'"
        ) from exc
    except Exception as exc:  # SQLAlchemy raises many types for a bad URL or an unreachable server
        raise InputError(f"cannot open study storage {masked_url(url)}: {exc}") from exc


def make_sampler(name: str, n_objectives: int, seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise InputError(f"invalid sampler {name!r}; expected one of {', '.join(SAMPLERS)}")
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        if n_objectives < 2:
            raise InputError("the nsga2 sampler needs two objectives, e.g. --objective ndcg,bytes")
        return optuna.samplers.NSGAIISampler(seed=seed)
    # Multivariate TPE with grouping models parameters jointly and handles conditional
    # ones (history length exists only with a history encoder); it covers several
    # objectives too.
    with warnings.catch_warnings():
        # group and constant_liar are marked experimental in Optuna 4 and 5.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, seed=seed, n_startup_trials=n_startup_trials, constant_liar=True
        )


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    if name not in PRUNERS:
        raise InputError(f"invalid pruner {name!r}; expected one of {', '.join(PRUNERS)}")
    if name == "hyperband":
        return FloorHyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1), reduction_factor=3)
    if name == "median":
        return FloorMedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


class _Floor:
    """A pruner mix-in that stops a trial whose best score so far is below FLOOR_SHARE times
    the best score that a completed trial had reached by the same step, before the pruner's
    own rule runs.

    Hyperband compares a trial only with the trials of its own bracket, and the median rule
    waits for startup trials. So a slow configuration far behind the first trials could run
    until its time limit. On MovieLens-1M, BPR trials with MLP towers took 200 s for two epochs
    at validation NDCG@10 0.002, against 0.25 for the first trial. The pruners below subclass
    Optuna's, so Optuna still gives the sampler only the trials of the trial's bracket.
    """

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is not None and len(study.directions) == 1 and study.direction == optuna.study.StudyDirection.MAXIMIZE:
            # The trial's best so far, as the median rule judges it: one bad epoch does not drop a leader.
            value = _best_of(trial, step)
            best = _best_reached(study, step)
            # The share means "far below" only for positive scores, as NDCG is.
            if value is not None and best is not None and best > 0 and value < FLOOR_SHARE * best:
                logger.info(
                    "pruning trial %d: its best %.4f by step %d is below %.2f times %.4f, the best completed "
                    "trial's by then", trial.number, value, step, FLOOR_SHARE, best,
                )
                return True
        return super().prune(study, trial)  # type: ignore[misc]


class FloorHyperbandPruner(_Floor, optuna.pruners.HyperbandPruner):
    """Optuna's Hyperband pruner, which also stops trials far below the best (see _Floor)."""


class FloorMedianPruner(_Floor, optuna.pruners.MedianPruner):
    """Optuna's median pruner, which also stops trials far below the best (see _Floor)."""


def _best_of(trial: FrozenTrial, step: int) -> float | None:
    """Return the trial's best finite intermediate value at or before ``step``, or None."""
    values = [value for at, value in trial.intermediate_values.items() if at <= step and math.isfinite(value)]
    return max(values) if values else None


def _best_reached(study: optuna.Study, step: int) -> float | None:
    """Return the best intermediate value that any completed trial reported at or before ``step``."""
    reached = [_best_of(trial, step) for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    reached = [value for value in reached if value is not None]
    return max(reached) if reached else None


def worker_seed(seed: int, shared_storage: bool, n_existing_trials: int) -> int:
    """Return the sampler seed of this worker.

    A resumed study gets a new seed so its random draws do not repeat the first run's.
    Workers sharing a remote study add their process id, so two workers started at
    the same moment do not propose the same first configurations.
    """
    offset = n_existing_trials
    if shared_storage:
        offset += os.getpid()
    return (seed + offset) % (2**32)


class StopRequest:
    """Turn SIGINT and SIGTERM into a request to stop after the running trial.

    A second SIGINT interrupts at once. The previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested.set()
        logger.warning("received %s: finishing the running trial, then stopping", signal.Signals(signum).name)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def reinstall(self) -> None:
        """Put this handler back on SIGTERM after a library (Lightning's Trainer) replaced it."""
        if self._previous and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)

    def callback(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.requested.is_set():
            study.stop()
