"""`recsearch train DATA_DIR --out RUN_DIR [--config FILE]`: train one two-tower configuration."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from recsearch.cli.progress import console, key_value_table
from recsearch.errors import InputError

if TYPE_CHECKING:
    from recsearch.data import Dataset
    from recsearch.train import RunConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one two-tower configuration on a dataset directory",
        description="Train one configuration; write the weights, the configuration and the metrics to RUN_DIR.",
    )
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="dataset directory written by `recsearch ingest`")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="directory for the run's files")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="RunConfig JSON with 'model' and 'train' sections (default: the built-in defaults)")
    parser.add_argument("--max-epochs", type=int, help="override train.max_epochs of the configuration")
    parser.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"),
                        help="device type (default: a GPU when present, else the CPU)")
    parser.add_argument("--devices", type=int, default=1,
                        help="devices per node; more than 1 trains with distributed data parallel (default: 1)")
    parser.add_argument("--num-nodes", type=int, default=1, help="machines taking part in DDP training (default: 1)")
    parser.add_argument("--baselines", action="store_true",
                        help="also fit the baselines on the same split and report any the model does not beat")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into RUN_DIR even if it already contains files; the run's own files are replaced")
    parser.set_defaults(handler=run)


# Bytes per trainable parameter during training: float32 weight, gradient and Adam's two moments.
_TRAINING_BYTES_PER_PARAMETER = 16


def read_run_config(path: Path | None) -> RunConfig:
    """Return the RunConfig in ``path``, or the defaults when no file is given."""
    from recsearch.train import RunConfig

    if path is None:
        return RunConfig()
    if path.is_dir():
        raise InputError(f"configuration file {path} is a directory; pass the path of a RunConfig JSON file")
    if not path.is_file():
        raise InputError(f"configuration file {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"configuration file {path} is not UTF-8 text ({exc}); write the RunConfig as JSON") from None
    return RunConfig.from_json(text)


def is_launching_process() -> bool:
    """Return whether this is the process the user started, not a DDP rank that Lightning or torchrun added."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Raise InputError when ``run_dir`` is a file, or contains files and ``overwrite`` is off.

    With ``overwrite`` the files of an earlier run are deleted first, so a run that fails
    cannot leave the earlier run's weights beside its own configuration. Other files stay.
    """
    from recsearch.train.api import CONFIG_FILE, METRICS_FILE, MODEL_FILE

    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"RUN_DIR {run_dir} exists and is not a directory; choose another --out")
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    if not overwrite:
        raise InputError(
            f"RUN_DIR {run_dir} already contains files; choose another --out, or pass --overwrite to replace the run"
        )
    for name in (CONFIG_FILE, MODEL_FILE, METRICS_FILE, "checkpoints/best.ckpt"):
        (run_dir / name).unlink(missing_ok=True)


def check_dataset_for_training(dataset: Dataset) -> None:
    """Raise InputError when a split that training needs is empty."""
    root = dataset.root
    if len(dataset.train) == 0:
        raise InputError(f"the training split of {root} is empty; ingest a larger log or lower the k-core minimums")
    if len(dataset.validation) == 0:
        raise InputError(
            f"the validation split of {root} is empty, but early stopping and the choice of the best epoch "
            "rank it every epoch; re-ingest with a validation split (users need at least 3 interactions for "
            "leave-last-out, or set --validation-fraction above 0)"
        )


def check_memory(config: RunConfig, dataset: Dataset) -> None:
    """Raise InputError when the model's training state cannot fit in this machine's memory."""
    from recsearch.models import estimate_size
    from recsearch.train import catalog_schema

    try:
        total_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return  # NOTE: the memory size is unknown on this platform, so the check is skipped.
    size = estimate_size(config.model, catalog_schema(dataset))
    needed = size.n_parameters * _TRAINING_BYTES_PER_PARAMETER
    if needed > total_bytes:
        raise InputError(
            f"the model has {size.n_parameters:,} parameters, which need about {needed / 2**30:.1f} GiB to "
            f"train, above this machine's {total_bytes / 2**30:.1f} GiB of memory; lower embedding_dim, the "
            "id_dim and width values, or hash large vocabularies with embeddings.hash_above"
        )


def route_lightning_logs(verbose: int, quiet: bool) -> None:
    """Send Lightning's records through the CLI's handler only, at the CLI's level.

    Importing Lightning adds its own console handler and sets its level to INFO, so
    without this each of its messages is printed twice, even with --quiet.
    """
    lightning_logger = logging.getLogger("lightning")
    for handler in list(lightning_logger.handlers):
        lightning_logger.removeHandler(handler)
    level = logging.WARNING if quiet or verbose < 2 else logging.DEBUG
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).propagate = True


def run(args: argparse.Namespace) -> int:
    # Imported here so that `recsearch --help` does not load torch and Lightning.
    from recsearch.data import load_dataset
    from recsearch.evaluate import baselines_not_beaten, run_baselines
    from lightning.pytorch.callbacks import RichProgressBar

    from recsearch.train import train_model

    route_lightning_logs(args.verbose, args.quiet)
    if args.devices < 1 or args.num_nodes < 1:
        raise InputError(f"--devices and --num-nodes must be at least 1, got {args.devices} and {args.num_nodes}")
    config = read_run_config(args.config)
    if args.max_epochs is not None:
        if args.max_epochs < 1:
            raise InputError(f"--max-epochs must be at least 1, got {args.max_epochs}")
        config = config.model_copy(update={"train": config.train.model_copy(update={"max_epochs": args.max_epochs})})

    if is_launching_process():
        prepare_run_dir(args.out, args.overwrite)
    dataset = load_dataset(args.data_dir)
    check_dataset_for_training(dataset)
    check_memory(config, dataset)
    result = train_model(
        dataset,
        config,
        args.out,
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        callbacks=[] if args.quiet else [RichProgressBar()],
        enable_progress_bar=not args.quiet,
    )
    if not result.is_global_zero:
        return 0

    rows = {
        "epochs": str(result.n_epochs),
        "best epoch": str(result.best_epoch),
        "training time": f"{result.train_seconds:.1f} s",
    }
    for split, metrics in (("validation", result.validation_metrics), ("test", result.test_metrics)):
        for name in ("ndcg@10", "recall@20"):
            if name in metrics:
                rows[f"{split} {name}"] = f"{metrics[name]:.4f}"

    if args.baselines:
        split = "test" if result.test_metrics else "validation"
        metrics = result.test_metrics or result.validation_metrics
        baselines = run_baselines(dataset, split=split)
        for name, baseline in baselines.items():
            rows[f"{name} {split} ndcg@10"] = f"{baseline.metrics['ndcg@10']:.4f}"
        not_beaten = baselines_not_beaten(metrics, baselines)
        rows["baselines not beaten"] = ", ".join(not_beaten) or "none"
    console.print(key_value_table(f"trained {args.out}", list(rows.items())))
    return 0
