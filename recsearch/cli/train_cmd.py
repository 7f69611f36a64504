"""`recsearch train DATA_DIR --out RUN_DIR [--config FILE]`: train one two-tower configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from recsearch.cli.progress import console, key_value_table
from recsearch.errors import InputError


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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `recsearch --help` does not load torch and Lightning.
    from recsearch.data import load_dataset
    from recsearch.evaluate import baselines_not_beaten, run_baselines
    from lightning.pytorch.callbacks import RichProgressBar

    from recsearch.train import RunConfig, train_model

    if args.devices < 1 or args.num_nodes < 1:
        raise InputError(f"--devices and --num-nodes must be at least 1, got {args.devices} and {args.num_nodes}")
    config = RunConfig()
    if args.config is not None:
        if not args.config.is_file():
            raise InputError(f"configuration file {args.config} not found")
        config = RunConfig.from_json(args.config.read_text(encoding="utf-8"))
    if args.max_epochs is not None:
        if args.max_epochs < 1:
            raise InputError(f"--max-epochs must be at least 1, got {args.max_epochs}")
        config = config.model_copy(update={"train": config.train.model_copy(update={"max_epochs": args.max_epochs})})

    dataset = load_dataset(args.data_dir)
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
