import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recsearch import model_dir as md
from recsearch.errors import ModelDirError


def write_small(out: Path, **kwargs) -> dict:
    arrays = {"item_ids.npy": np.array(["a", "b"]), "vectors.npy": np.ones((2, 3), dtype=np.float32)}
    return md.write_model_dir(out, arrays=arrays, blobs={"blob.bin": b"xyz"}, manifest={"n_items": 2}, **kwargs)


def test_write_records_sha256_of_every_file(tmp_path):
    manifest = write_small(tmp_path / "m")
    assert sorted(manifest["files"]) == ["blob.bin", "item_ids.npy", "vectors.npy"]
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == md.sha256_of(tmp_path / "m" / name)
    assert manifest["format_version"] == md.MODEL_FORMAT_VERSION
    assert md.read_manifest(tmp_path / "m") == manifest


def test_write_leaves_no_temporary_directory(tmp_path):
    write_small(tmp_path / "m")
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_write_rejects_existing_without_overwrite(tmp_path):
    write_small(tmp_path / "m")
    with pytest.raises(ModelDirError, match="already exists"):
        write_small(tmp_path / "m")
    replaced = write_small(tmp_path / "m", overwrite=True)
    assert md.read_manifest(tmp_path / "m")["model_version"] == replaced["model_version"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_verify_names_corrupted_file(tmp_path):
    write_small(tmp_path / "m")
    path = tmp_path / "m" / "vectors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match="vectors.npy fails its sha256 check"):
        md.verify_files(tmp_path / "m", md.read_manifest(tmp_path / "m"))


def test_verify_names_missing_and_truncated_files(tmp_path):
    write_small(tmp_path / "m")
    (tmp_path / "m" / "blob.bin").write_bytes(b"x")
    with pytest.raises(ModelDirError, match="blob.bin has 1 bytes"):
        md.verify_files(tmp_path / "m", md.read_manifest(tmp_path / "m"))
    (tmp_path / "m" / "blob.bin").unlink()
    with pytest.raises(ModelDirError, match="blob.bin is missing"):
        md.verify_files(tmp_path / "m", md.read_manifest(tmp_path / "m"))


def test_read_manifest_rejects_other_format_version(tmp_path):
    write_small(tmp_path / "m")
    path = tmp_path / "m" / md.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["format_version"] = md.MODEL_FORMAT_VERSION + 1
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelDirError, match="format_version"):
        md.read_manifest(tmp_path / "m")


def test_read_manifest_rejects_missing_directory(tmp_path):
    with pytest.raises(ModelDirError, match="not found"):
        md.read_manifest(tmp_path / "absent")


def test_load_never_unpickles(history_model_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(history_model_dir, copy)
    # An object array can only be stored with pickle; give it a valid checksum so only the loader can stop it.
    np.save(copy / md.ITEM_IDS, np.array(["a", None], dtype=object), allow_pickle=True)
    manifest = json.loads((copy / md.MANIFEST_FILE).read_text())
    manifest["files"][md.ITEM_IDS] = {"sha256": md.sha256_of(copy / md.ITEM_IDS), "bytes": (copy / md.ITEM_IDS).stat().st_size}
    (copy / md.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelDirError, match="item_ids.npy is not a readable .npy array"):
        md.load_model_dir(copy)


def test_manifest_path_outside_directory_rejected(tmp_path):
    write_small(tmp_path / "m")
    path = tmp_path / "m" / md.MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["files"]["../escape"] = {"sha256": "0", "bytes": 0}
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelDirError, match="outside the directory"):
        md.verify_files(tmp_path / "m", md.read_manifest(tmp_path / "m"))


def test_switch_link_replaces_target(tmp_path):
    write_small(tmp_path / "a")
    write_small(tmp_path / "b")
    link = tmp_path / "current"
    md.switch_link(link, tmp_path / "a")
    assert link.resolve() == (tmp_path / "a").resolve()
    md.switch_link(link, tmp_path / "b")
    assert link.resolve() == (tmp_path / "b").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "current"]


def test_left_pad_keeps_latest_items():
    items, mask = md.left_pad([np.array([1, 2, 3, 4]), np.array([7]), np.array([], dtype=np.int64)], 3)
    assert items.tolist() == [[2, 3, 4], [0, 0, 7], [0, 0, 0]]
    assert mask.tolist() == [[True, True, True], [False, False, True], [False, False, False]]
