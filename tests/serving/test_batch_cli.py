import numpy as np
import polars as pl

from recsearch import model_dir as md
from recsearch.cli.main import main
from serving.model import AttributeFilter, Query, ServingModel


def test_batch_equals_single_queries(mf_model_dir, tmp_path):
    users_file = tmp_path / "users.txt"
    arrays = md.load_model_dir(mf_model_dir)
    chosen = arrays.user_ids[:25].tolist() + ["unknown-user"]
    users_file.write_text("\n".join(chosen) + "\n")
    out = tmp_path / "recs.parquet"

    status = main(["recommend-batch", str(mf_model_dir), "--users", str(users_file), "--k", "7", "--out", str(out),
                   "--filter", "category!=" + arrays.attributes["category"][1][1]])
    assert status == 0
    frame = pl.read_parquet(out)
    assert frame.columns == ["user_id", "rank", "item_id", "score", "fallback"]
    assert frame.height == 7 * len(chosen)

    model = ServingModel.load(mf_model_dir)
    filters = (AttributeFilter("category", excluded_values=(arrays.attributes["category"][1][1],)),)
    for user_id in chosen:
        rows = frame.filter(pl.col("user_id") == user_id).sort("rank")
        single = model.recommend(Query(user_id, 7, filters=filters))
        assert rows["item_id"].to_list() == single.item_ids
        np.testing.assert_allclose(rows["score"].to_numpy(), single.scores, rtol=1e-5)
        assert rows["fallback"].to_list() == [single.fallback] * 7


def test_batch_all_users(history_model_dir, tmp_path):
    out = tmp_path / "all.parquet"
    assert main(["recommend-batch", str(history_model_dir), "--all-users", "--k", "3", "--out", str(out)]) == 0
    frame = pl.read_parquet(out)
    assert frame["user_id"].n_unique() == len(md.load_model_dir(history_model_dir).user_ids)
    assert not frame["fallback"].any()


def test_batch_rejects_unknown_filter(history_model_dir, tmp_path):
    status = main(["recommend-batch", str(history_model_dir), "--all-users", "--k", "3",
                   "--out", str(tmp_path / "x.parquet"), "--filter", "colour=red"])
    assert status == 2
    assert not (tmp_path / "x.parquet").exists()


def test_recommend_client_prints_items(history_model_dir, capsys):
    from serving.server import BackgroundServer, ServerOptions

    server = BackgroundServer(ServerOptions(history_model_dir, port=0, reload_interval=0))
    try:
        user_id = str(md.load_model_dir(history_model_dir).user_ids[0])
        assert main(["recommend", "--addr", f"127.0.0.1:{server.port}", "--user", user_id, "--k", "4"]) == 0
        assert main(["recommend", "--addr", f"127.0.0.1:{server.port}", "--user", user_id, "--k", "0"]) == 2
    finally:
        server.stop()
