"""Faults found in `recsearch train`, training and dataset loading, each pinned by a test."""

import json
import logging
import os
import shutil

import pytest
from recsearch.cli.main import main
from recsearch.data import load_dataset
from recsearch.errors import DatasetFormatError, InputError
from recsearch.evaluate import evaluate_split, evaluation_split
from recsearch.models import EmbeddingConfig, ModelConfig
from recsearch.train import RunConfig, TrainConfig, TwoTowerScorer, load_trained_model, train_model

ONE_EPOCH = TrainConfig(batch_size=256, max_epochs=1, patience=1)


def copy_dataset(data_dir, tmp_path):
    return shutil.copytree(data_dir, tmp_path / "data")


def empty_split(data_dir, name):
    """Keep the columns of ``name``.parquet but none of its rows, as ingestion writes an empty split."""
    import polars as pl

    path = data_dir / f"{name}.parquet"
    pl.read_parquet(path).head(0).write_parquet(path)


def test_cli_non_utf8_config(data_dir, tmp_path, capsys):
    config_file = tmp_path / "config.json"
    config_file.write_bytes(b"\xff\xfe{}")

    status = main(["train", str(data_dir), "--out", str(tmp_path / "run"), "--config", str(config_file)])

    assert status == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_cli_refuses_existing_run_dir(data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.pt").write_bytes(b"an earlier run")

    status = main(["train", str(data_dir), "--out", str(run_dir)])

    assert status == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (run_dir / "model.pt").read_bytes() == b"an earlier run"


def test_cli_rejects_empty_validation(data_dir, tmp_path, capsys):
    data = copy_dataset(data_dir, tmp_path)
    empty_split(data, "validation")

    status = main(["train", str(data), "--out", str(tmp_path / "run")])

    assert status == 2
    assert "validation split" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_rejects_model_above_memory(data_dir, tmp_path, capsys, monkeypatch):
    memory = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 16}  # 64 KiB, below the default model's training state
    monkeypatch.setattr(os, "sysconf", lambda name: memory[name])

    status = main(["train", str(data_dir), "--out", str(tmp_path / "run")])

    assert status == 2
    assert "GiB of memory" in capsys.readouterr().err


def test_cli_quiet_silences_lightning(tmp_path, monkeypatch):
    import lightning  # noqa: F401 (adds Lightning's own console handler)

    lightning_logger = logging.getLogger("lightning")
    pytorch_logger = logging.getLogger("lightning.pytorch")
    for target in (lightning_logger, pytorch_logger):
        monkeypatch.setattr(target, "handlers", list(target.handlers))
        monkeypatch.setattr(target, "level", target.level)
        monkeypatch.setattr(target, "propagate", target.propagate)

    main(["-q", "train", str(tmp_path / "missing"), "--out", str(tmp_path / "run")])

    assert lightning_logger.handlers == []
    assert pytorch_logger.getEffectiveLevel() >= logging.WARNING


def test_train_model_rejects_empty_validation(data_dir, tmp_path):
    data = copy_dataset(data_dir, tmp_path)
    empty_split(data, "validation")
    config = RunConfig(model=ModelConfig.matrix_factorization(8), train=ONE_EPOCH)

    with pytest.raises(InputError, match="validation"):
        train_model(data, config, tmp_path / "run", evaluate_test=False)


def test_refit_run_reloads_on_its_dataset(dataset, tmp_path):
    model = ModelConfig.matrix_factorization(8, embeddings=EmbeddingConfig(n_frequency_tiers=3))
    config = RunConfig(model=model, train=ONE_EPOCH)
    result = train_model(dataset.merged(), config, tmp_path, select_best=False)

    network = load_trained_model(tmp_path, dataset)

    reloaded = evaluate_split(TwoTowerScorer(network, None), evaluation_split(dataset, "test")).summary()
    assert reloaded["ndcg@10"] == pytest.approx(result.test_metrics["ndcg@10"], abs=1e-6)


def test_refit_log_names_no_best_epoch(dataset, tmp_path, caplog):
    config = RunConfig(model=ModelConfig.matrix_factorization(8), train=ONE_EPOCH)
    with caplog.at_level(logging.INFO, logger="recsearch.train.api"):
        train_model(dataset.merged(), config, tmp_path, select_best=False, evaluate_test=False)

    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trained ")]
    assert len(summary) == 1
    assert summary[0].startswith("trained 1 epochs in ")
    assert summary[0].endswith(" s without validation")


def test_load_dataset_corrupt_parquet(data_dir, tmp_path):
    data = copy_dataset(data_dir, tmp_path)
    (data / "test.parquet").write_bytes(b"not parquet")

    with pytest.raises(DatasetFormatError, match="test.parquet"):
        load_dataset(data)


def test_load_dataset_index_beyond_counts(data_dir, tmp_path):
    data = copy_dataset(data_dir, tmp_path)
    manifest = json.loads((data / "dataset.json").read_text())
    manifest["n_items"] -= 10
    (data / "dataset.json").write_text(json.dumps(manifest))

    with pytest.raises(DatasetFormatError, match="n_items"):
        load_dataset(data)
