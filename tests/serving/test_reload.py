import shutil
import threading
import time

import grpc
import numpy as np

from recsearch import model_dir as md
from serving.server import BackgroundServer, ServerOptions
from tests.serving.helpers import pb, stub_for

N_CLIENT_THREADS = 4


def corrupt_copy(source, target):
    """Copy a model directory with a new version id and one flipped byte in its item vectors."""
    shutil.copytree(source, target)
    manifest_path = target / md.MANIFEST_FILE
    manifest_path.write_text(manifest_path.read_text().replace(md.read_manifest(source)["model_version"], "corrupted-version"))
    vectors = target / md.ITEM_VECTORS
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF
    vectors.write_bytes(bytes(data))


def test_reload_under_traffic_without_failures(history_model_dir, mf_model_dir, tmp_path):
    link = tmp_path / "current"
    md.switch_link(link, history_model_dir)
    server = BackgroundServer(ServerOptions(link, port=0, reload_interval=0))
    channel, stub = stub_for(server.port)
    user_id = str(md.load_model_dir(history_model_dir).user_ids[0])
    first_version = md.read_manifest(history_model_dir)["model_version"]
    second_version = md.read_manifest(mf_model_dir)["model_version"]

    failures: list[grpc.RpcError] = []
    versions: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                response = stub.Recommend(pb.RecommendRequest(user_id=user_id, k=5), timeout=10)
                versions.append(response.model_version)
            except grpc.RpcError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=traffic) for _ in range(N_CLIENT_THREADS)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        md.switch_link(link, mf_model_dir)
        assert server.reload() == "reloaded"
        time.sleep(0.3)

        corrupt_copy(mf_model_dir, tmp_path / "bad")
        md.switch_link(link, tmp_path / "bad")
        assert server.reload() == "rejected"
        assert server.reload() == "unchanged"  # a rejected version is not retried
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert failures == []
    assert versions[0] == first_version
    assert versions[-1] == second_version
    assert set(versions) == {first_version, second_version}
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
    assert info.model_version == second_version
    assert info.index_kind == "hnsw"
    channel.close()
    server.stop()


def test_reload_loop_follows_link(history_model_dir, mf_model_dir, tmp_path):
    link = tmp_path / "current"
    md.switch_link(link, history_model_dir)
    server = BackgroundServer(ServerOptions(link, port=0, reload_interval=0.1))
    channel, stub = stub_for(server.port)
    try:
        # BackgroundServer does not run the periodic loop; start it on the server's event loop.
        import asyncio

        from serving.server import reload_loop

        wake = asyncio.Event()
        asyncio.run_coroutine_threadsafe(_start(reload_loop(server.holder, 0.1, wake)), server._loop)
        md.switch_link(link, mf_model_dir)
        expected = md.read_manifest(mf_model_dir)["model_version"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5).model_version == expected:
                break
            time.sleep(0.1)
        assert stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5).model_version == expected
    finally:
        channel.close()
        server.stop()


async def _start(coroutine):
    import asyncio

    asyncio.get_running_loop().create_task(coroutine)


def test_first_load_rejects_corrupted_artifact(mf_model_dir, tmp_path):
    corrupt_copy(mf_model_dir, tmp_path / "bad")
    from recsearch.errors import ModelDirError
    import pytest

    with pytest.raises(ModelDirError, match="item_vectors.npy fails its sha256 check"):
        BackgroundServer(ServerOptions(tmp_path / "bad", port=0, reload_interval=0))
