"""The MODEL_DIR contract: what ``recsearch export`` writes and the server reads.

A MODEL_DIR is immutable once written and holds:

- ``manifest.json``: format and version, model version id, creation time, the
  training data's fingerprint, the run configuration, offline metrics, the index
  and its measured recall, and the sha256 and size of every other file;
- ``item_ids.npy`` / ``user_ids.npy``: the id strings, one row per index;
- ``item_vectors.npy`` (n_items, D) and ``user_vectors.npy`` (n_users, D), float32;
- ``item_index.faiss``: a FAISS index over the item vectors, searched as ``recsearch.item_index``
  and the manifest's index entry prescribe;
- ``user_tower.onnx``: the user tower, only for models that read recent items;
- ``seen_indptr.npy`` / ``seen_items.npy``: each user's known items, oldest first (CSR,
  users are rows);
- ``popular_items.npy`` / ``popular_scores.npy``: the popularity ranking of the fallback;
- ``attributes/NAME.codes.npy`` (n_items,) and ``attributes/NAME.values.npy``: one
  categorical item attribute for filters; code 0 is the missing value "".

Every array is a plain ``.npy`` file read with ``allow_pickle=False``. This module is
shared by export and serving, so it imports only the standard library and NumPy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsearch.errors import ModelDirError

MODEL_FORMAT = "recsearch.model"
MODEL_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"

ITEM_IDS = "item_ids.npy"
USER_IDS = "user_ids.npy"
ITEM_VECTORS = "item_vectors.npy"
USER_VECTORS = "user_vectors.npy"
ITEM_INDEX = "item_index.faiss"
USER_TOWER = "user_tower.onnx"
# Inputs the user tower may declare. The exporter drops an input the network never reads
# (the user id of a history-only tower), so callers feed only the declared ones.
USER_TOWER_INPUTS = ("user", "history", "history_mask")
SEEN_INDPTR = "seen_indptr.npy"
SEEN_ITEMS = "seen_items.npy"
POPULAR_ITEMS = "popular_items.npy"
POPULAR_SCORES = "popular_scores.npy"
ATTRIBUTE_DIR = "attributes"

_HASH_CHUNK_BYTES = 1 << 20


def attribute_files(name: str) -> tuple[str, str]:
    """Return the relative paths of one attribute's per-item codes and its value vocabulary."""
    return f"{ATTRIBUTE_DIR}/{name}.codes.npy", f"{ATTRIBUTE_DIR}/{name}.values.npy"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def write_model_dir(
    out: str | Path,
    *,
    arrays: dict[str, np.ndarray],
    blobs: dict[str, bytes],
    manifest: dict[str, Any],
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a MODEL_DIR to a temporary sibling directory, then rename it to ``out``.

    ``arrays`` and ``blobs`` map relative file names to contents. The manifest gets
    the format fields, ``model_version``, ``created_at`` and ``files`` added, and is
    returned. A reader never sees a half-written directory, because the rename is
    atomic. With ``overwrite`` an existing ``out`` is first renamed aside, so there is
    a short moment without ``out``: serve through a link switched by ``switch_link``
    to replace a model under a running server.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ModelDirError(f"{out} already exists; choose another --out, or pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    scratch.chmod(0o755)  # mkdtemp makes it private to the exporting user; servers may run as another
    try:
        files: dict[str, dict[str, Any]] = {}
        for name, array in arrays.items():
            _check_array(name, array)
            path = scratch / name
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, array, allow_pickle=False)
        for name, data in blobs.items():
            path = scratch / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        for name in sorted([*arrays, *blobs]):
            path = scratch / name
            files[name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}

        created = time.gmtime()
        content = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        full = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "model_version": time.strftime("%Y%m%dT%H%M%SZ", created) + "-" + content[:12],
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", created),
            **manifest,
            "files": files,
        }
        (scratch / MANIFEST_FILE).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        _fsync_tree(scratch)

        if out.exists():
            aside = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out, aside)
            os.rename(scratch, out)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return full


def switch_link(link: str | Path, target: str | Path) -> None:
    """Point the symbolic link ``link`` at ``target`` atomically, replacing any earlier link.

    A server started on ``link`` picks the new target up at its next reload check.
    """
    link = Path(link)
    target = Path(target).resolve()
    if link.exists() and not link.is_symlink():
        raise ModelDirError(f"{link} exists and is not a symbolic link; choose another link path")
    temporary = link.parent / f".{link.name}.tmp-{uuid.uuid4().hex[:8]}"
    os.symlink(target, temporary, target_is_directory=True)
    os.replace(temporary, link)  # rename(2) over the old link: readers see the old or the new target


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """Read ``manifest.json`` and check its format and version; raise ModelDirError naming the problem."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST_FILE
    if not model_dir.is_dir():
        raise ModelDirError(f"model directory {model_dir} not found; create one with `recsearch export RUN_DIR --out DIR`")
    if not path.is_file():
        raise ModelDirError(f"{model_dir} is not a model directory: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(f"{path} is not valid JSON ({exc}); export the model again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MODEL_FORMAT:
        raise ModelDirError(f"{path} is not a recsearch model manifest (expected format {MODEL_FORMAT!r})")
    version = manifest.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise ModelDirError(
            f"{path} has format_version {version!r}; this recsearch reads version {MODEL_FORMAT_VERSION}: "
            "export the model again with this version"
        )
    if not isinstance(manifest.get("files"), dict):
        raise ModelDirError(f"{path} lists no files; export the model again")
    return manifest


def verify_files(model_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Check the size and sha256 of every file the manifest lists; raise ModelDirError naming the first bad one."""
    model_dir = Path(model_dir)
    for name, entry in manifest["files"].items():
        path = model_dir / name
        if not _is_inside(model_dir, path):
            raise ModelDirError(f"{model_dir}/{MANIFEST_FILE} lists {name!r}, a path outside the directory")
        if not path.is_file():
            raise ModelDirError(f"model file {path} is missing; export the model again")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise ModelDirError(
                f"model file {path} has {size} bytes but the manifest records {entry.get('bytes')}: "
                "the file is truncated or replaced; export the model again"
            )
        if sha256_of(path) != entry.get("sha256"):
            raise ModelDirError(
                f"model file {path} fails its sha256 check: the file is corrupted or replaced; export the model again"
            )


@dataclass(frozen=True)
class ModelArrays:
    """The arrays of a verified MODEL_DIR, memory-mapped read-only, and the paths of its binary files."""

    root: Path
    manifest: dict[str, Any]
    item_ids: np.ndarray  # (n_items,) str
    user_ids: np.ndarray  # (n_users,) str
    item_vectors: np.ndarray  # (n_items, D) float32
    user_vectors: np.ndarray  # (n_users, D) float32
    seen_indptr: np.ndarray  # (n_users + 1,) int64
    seen_items: np.ndarray  # (nnz,) int32, each user's items oldest first
    popular_items: np.ndarray  # (n_items,) int32, most popular first
    popular_scores: np.ndarray  # (n_items,) float32, share of all interactions
    attributes: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> ((n_items,) int32 codes, (V,) str values)
    index_path: Path
    user_tower_path: Path | None


def load_model_dir(model_dir: str | Path, *, verify: bool = True) -> ModelArrays:
    """Read a MODEL_DIR after checking its manifest and, with ``verify``, every file's checksum."""
    root = Path(model_dir).resolve()
    manifest = read_manifest(root)
    if verify:
        verify_files(root, manifest)

    def array(name: str, dtype_kind: str) -> np.ndarray:
        if name not in manifest["files"]:
            raise ModelDirError(f"{root}/{MANIFEST_FILE} does not list {name}; export the model again")
        path = root / name
        try:
            # Memory-mapped, so worker processes share one copy through the page cache.
            value = np.load(path, mmap_mode="r" if dtype_kind != "U" else None, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ModelDirError(f"model file {path} is not a readable .npy array ({exc})") from None
        if value.dtype.kind != dtype_kind:
            raise ModelDirError(f"model file {path} has dtype {value.dtype}, expected kind {dtype_kind!r}")
        return value

    attributes = {}
    for name in manifest.get("attributes", []):
        codes_file, values_file = attribute_files(name)
        attributes[name] = (array(codes_file, "i"), array(values_file, "U"))
    tower = manifest.get("user_tower")
    loaded = ModelArrays(
        root=root,
        manifest=manifest,
        item_ids=array(ITEM_IDS, "U"),
        user_ids=array(USER_IDS, "U"),
        item_vectors=array(ITEM_VECTORS, "f"),
        user_vectors=array(USER_VECTORS, "f"),
        seen_indptr=array(SEEN_INDPTR, "i"),
        seen_items=array(SEEN_ITEMS, "i"),
        popular_items=array(POPULAR_ITEMS, "i"),
        popular_scores=array(POPULAR_SCORES, "f"),
        attributes=attributes,
        index_path=root / ITEM_INDEX,
        user_tower_path=root / tower["file"] if tower else None,
    )
    _check_shapes(loaded)
    return loaded


def history_window(indptr: np.ndarray, items: np.ndarray, user: int, length: int) -> np.ndarray:
    """Return the last ``length`` items of ``user``'s CSR row, oldest first."""
    start, end = int(indptr[user]), int(indptr[user + 1])
    return np.asarray(items[max(start, end - length) : end])


def left_pad(histories: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack histories into left-padded (B, N) int64 items and bool mask, keeping the last N of each.

    Position N-1 is the latest item, as the user tower expects; padding is item 0.
    """
    items = np.zeros((len(histories), length), dtype=np.int64)
    mask = np.zeros((len(histories), length), dtype=bool)
    for row, history in enumerate(histories):
        tail = history[-length:]
        if len(tail):
            items[row, length - len(tail) :] = tail
            mask[row, length - len(tail) :] = True
    return items, mask


def _check_array(name: str, array: np.ndarray) -> None:
    assert name.endswith(".npy"), f"array file {name} must end in .npy"
    assert array.dtype.kind != "O", f"{name} is an object array, which only pickle could store"


def _check_shapes(model: ModelArrays) -> None:
    n_items, n_users = len(model.item_ids), len(model.user_ids)
    checks = [
        (ITEM_VECTORS, model.item_vectors.ndim == 2 and model.item_vectors.shape[0] == n_items),
        (USER_VECTORS, model.user_vectors.ndim == 2 and model.user_vectors.shape[0] == n_users),
        (USER_VECTORS, model.user_vectors.shape[1] == model.item_vectors.shape[1]),
        (SEEN_INDPTR, model.seen_indptr.shape == (n_users + 1,)),
        (SEEN_ITEMS, model.seen_items.shape[0] == int(model.seen_indptr[-1])),
        (POPULAR_ITEMS, model.popular_items.shape == (n_items,) and model.popular_scores.shape == (n_items,)),
    ]
    for name, (codes, _) in model.attributes.items():
        checks.append((attribute_files(name)[0], codes.shape == (n_items,)))
    for name, ok in checks:
        if not ok:
            raise ModelDirError(f"model file {model.root / name} has a shape that does not match the catalogue")


def _is_inside(root: Path, path: Path) -> bool:
    return os.path.normpath(path).startswith(os.path.normpath(root) + os.sep)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def user_tower_feed(session: Any, user: np.ndarray, history: np.ndarray, history_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Return the inputs for an onnxruntime session of the user tower, keeping only the names it declares."""
    values = {"user": user, "history": history, "history_mask": history_mask}
    return {node.name: values[node.name] for node in session.get_inputs()}
