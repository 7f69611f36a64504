import json
import subprocess
import sys

from recsearch.models import LossConfig, ModelConfig
from recsearch.train import RunConfig, TrainConfig, train_model

CONFIG = RunConfig(
    model=ModelConfig.matrix_factorization(32, loss=LossConfig(kind="sampled_softmax")),
    train=TrainConfig(batch_size=256, learning_rate=0.01, max_epochs=4, patience=4),
)


def test_two_process_ddp_matches_single_process(data_dir, dataset, tmp_path, popularity_validation_ndcg):
    single = train_model(dataset, CONFIG, tmp_path / "single", evaluate_test=False)

    # Half the batch per rank keeps the global batch, and so the number of steps, equal.
    per_rank = CONFIG.model_copy(update={"train": CONFIG.train.model_copy(update={"batch_size": 128})})
    config_file = tmp_path / "config.json"
    config_file.write_text(per_rank.model_dump_json())
    # Lightning's DDP launcher starts the second rank by re-running this command line,
    # so the run goes through the CLI rather than inside the pytest process.
    command = [
        sys.executable, "-m", "recsearch.cli.main", "-q", "train", str(data_dir),
        "--out", str(tmp_path / "ddp"), "--config", str(config_file),
        "--accelerator", "cpu", "--devices", "2",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]

    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["best_score"] > 2 * popularity_validation_ndcg
    assert metrics["best_score"] >= 0.9 * single.best_score
