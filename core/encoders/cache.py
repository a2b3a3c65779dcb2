"""The embedding store: embeddings on disk, keyed by (encoder cache id, content hash).

Each encoder has a folder of **shards**: ``shard-<id>.npy`` (a ``float32 [rows, dim]``
array, read by memory map) and ``shard-<id>.json`` (its keys, shape and BLAKE2b digest).
A shard is written to temporary files and committed by renaming its JSON last, so a
reader sees a whole shard or none; a shard whose bytes do not match its digest (a crash
on a file system without atomic rename, a disk error, a foreign file) is deleted the
first time a process opens it, and its keys count as misses. One ``put_many`` writes one
shard; when an encoder's folder holds more than :data:`MAX_SHARDS`, they are merged into
one. Folders of the earlier one-file-per-embedding layout (``<key[:2]>/<key>.emb``) are
migrated into a shard when first opened.

Thread-safe within a process; several processes may read and write the same store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.atomic import write_bytes_atomic
from core.settings import settings

MAX_SHARDS = 64
"""Shards per encoder before they are merged into one (keeps opening a store cheap)."""

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_LEGACY_MAGIC = b"FEMB1\n"


def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class _Shard:
    name: str
    keys: list[str]
    array: np.ndarray  # memory-mapped, float32 [rows, dim]


@dataclass
class _Encoder:
    """What one process knows of one encoder's folder: its shards and where each key is."""

    folder: Path
    shards: dict[str, _Shard] = field(default_factory=dict)
    where: dict[str, tuple[str, int]] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)


class EmbeddingCache:
    """Embeddings on disk, in memory-mapped shards per encoder.

    Args:
        root: store folder; ``None`` uses the configured one (``FUSION_CACHE_DIR/embeddings``).

    Example::

        cache = EmbeddingCache()
        found, hit = cache.get_many(encoder.cache_id(), keys, encoder.out_dim)
        cache.put_many(encoder.cache_id(), [k for k, h in zip(keys, hit) if not h], fresh)
    """

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else settings().embedding_cache_dir
        self._encoders: dict[str, _Encoder] = {}
        self._lock = threading.RLock()

    def encoder_dir(self, cache_id: str) -> Path:
        """Folder of one encoder's shards: a readable prefix of the id plus its hash."""
        readable = _SAFE_NAME.sub("_", cache_id)[:48].strip("_.") or "encoder"
        return self.root / f"{readable}-{hashlib.sha256(cache_id.encode()).hexdigest()[:12]}"

    # ------------------------------------------------------------------ reading
    def get_many(self, cache_id: str, keys: Sequence[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """``(float32 [len(keys), dim], bool [len(keys)])``: the stored vectors and which keys hit.

        A stored vector of another size counts as a miss.
        """
        found = np.zeros((len(keys), dim), dtype=np.float32)
        hit = np.zeros(len(keys), dtype=bool)
        with self._lock:
            state = self._state(cache_id)
            if any(key not in state.where for key in keys):
                self._refresh(state)  # another process may have added shards since
            by_shard: dict[str, list[tuple[int, int]]] = {}
            for i, key in enumerate(keys):
                place = state.where.get(key)
                if place is not None:
                    by_shard.setdefault(place[0], []).append((i, place[1]))
            for name, pairs in by_shard.items():
                shard = state.shards[name]
                if shard.array.shape[1] != dim:
                    continue
                positions, rows = (np.asarray(x) for x in zip(*pairs, strict=True))
                found[positions] = shard.array[rows]
                hit[positions] = True
        return found, hit

    def count(self, cache_id: str) -> int:
        """Vectors stored for one encoder."""
        with self._lock:
            state = self._state(cache_id)
            self._refresh(state)
            return len(state.where)

    # ------------------------------------------------------------------ writing
    def put_many(self, cache_id: str, keys: Sequence[str], arrays: np.ndarray) -> None:
        """Store one vector per key (rows of ``arrays``) as one new shard; known keys are skipped."""
        arrays = np.asarray(arrays, dtype=np.float32)
        if arrays.ndim != 2 or len(arrays) != len(keys):
            raise ValueError(f"expected {len(keys)} vectors as a 2-D array, got shape {arrays.shape}")
        with self._lock:
            state = self._state(cache_id)
            self._refresh(state)
            fresh = {key: row for row, key in enumerate(keys) if key not in state.where}
            if not fresh:
                return
            name = _write_shard(state.folder, list(fresh), np.ascontiguousarray(arrays[list(fresh.values())]))
            label = state.folder / "cache_id.txt"
            if not label.exists():  # for humans clearing the cache: which encoder a folder belongs to
                write_bytes_atomic(label, cache_id.encode())
            self._open_shard(state, name)
            if len(state.shards) > MAX_SHARDS:
                self._compact(state)

    # ------------------------------------------------------------------ internals
    def _state(self, cache_id: str) -> _Encoder:
        state = self._encoders.get(cache_id)
        if state is None:
            state = _Encoder(self.encoder_dir(cache_id))
            _migrate_legacy(state.folder)
            self._refresh(state)
            self._encoders[cache_id] = state
        return state

    def _refresh(self, state: _Encoder) -> None:
        """Open the shards committed on disk since the last look; forget those that disappeared."""
        if not state.folder.is_dir():
            return
        on_disk = {p.name[: -len(".json")] for p in state.folder.glob("shard-*.json")}
        for name in sorted(on_disk - set(state.shards) - state.bad):
            self._open_shard(state, name)
        for name in set(state.shards) - on_disk:
            self._forget(state, name)

    def _open_shard(self, state: _Encoder, name: str) -> None:
        meta_path, data_path = state.folder / f"{name}.json", state.folder / f"{name}.npy"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            array = np.load(data_path, mmap_mode="r")
            valid = (
                isinstance(meta, dict)
                and array.dtype == np.float32
                and array.ndim == 2
                and list(array.shape) == [len(meta.get("keys", [])), meta.get("dim")]
                and _digest(data_path.read_bytes()) == meta.get("blake2b")
            )
        except (OSError, ValueError, TypeError):
            valid = False
        if not valid:
            state.bad.add(name)
            for path in (meta_path, data_path):
                path.unlink(missing_ok=True)
            return
        state.shards[name] = _Shard(name, list(meta["keys"]), array)
        for row, key in enumerate(meta["keys"]):
            state.where.setdefault(key, (name, row))

    def _forget(self, state: _Encoder, name: str) -> None:
        shard = state.shards.pop(name)
        for key in shard.keys:
            if state.where.get(key, ("", 0))[0] == name:
                del state.where[key]
        for other in state.shards.values():  # keys also held by another shard stay reachable
            for row, key in enumerate(other.keys):
                state.where.setdefault(key, (other.name, row))

    def _compact(self, state: _Encoder) -> None:
        """Merge every shard into one, under a lock file so two processes do not both do it."""
        with _locked(state.folder / ".compact.lock") as acquired:
            if not acquired:
                return
            self._refresh(state)
            keys = list(state.where)
            if not keys:
                return
            dim = next(iter(state.shards.values())).array.shape[1]
            vectors = np.zeros((len(keys), dim), dtype=np.float32)
            for i, key in enumerate(keys):
                name, row = state.where[key]
                vectors[i] = state.shards[name].array[row]
            merged = _write_shard(state.folder, keys, vectors)
            for name in list(state.shards):
                (state.folder / f"{name}.json").unlink(missing_ok=True)  # uncommit first, then the data
                (state.folder / f"{name}.npy").unlink(missing_ok=True)
            state.shards.clear()
            state.where.clear()
            self._open_shard(state, merged)


def _write_shard(folder: Path, keys: list[str], vectors: np.ndarray) -> str:
    """Write a shard's array then its JSON (the commit); returns the shard's name."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"shard-{os.getpid()}-{secrets.token_hex(6)}"
    data_tmp = folder / f".{name}.npy.tmp"
    with open(data_tmp, "wb") as handle:
        np.save(handle, vectors, allow_pickle=False)
    os.replace(data_tmp, folder / f"{name}.npy")
    digest = _digest((folder / f"{name}.npy").read_bytes())
    meta = {"keys": keys, "dim": int(vectors.shape[1]), "dtype": "float32", "blake2b": digest}
    write_bytes_atomic(folder / f"{name}.json", json.dumps(meta).encode())
    return name


@contextlib.contextmanager
def _locked(path: Path):
    """A non-blocking exclusive ``flock``; yields whether it was acquired."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _migrate_legacy(folder: Path) -> None:
    """Move entries of the one-file-per-embedding layout into one shard (unreadable ones are dropped)."""
    legacy = sorted(folder.glob("??/*.emb")) if folder.is_dir() else []
    if not legacy:
        return
    by_dim: dict[int, tuple[list[str], list[np.ndarray]]] = {}
    for path in legacy:
        vector = _read_legacy_entry(path.read_bytes())
        if vector is not None and vector.ndim == 1:
            keys, vectors = by_dim.setdefault(len(vector), ([], []))
            keys.append(path.stem)
            vectors.append(vector.astype(np.float32))
    for keys, vectors in by_dim.values():
        _write_shard(folder, keys, np.stack(vectors))
    for path in legacy:
        path.unlink(missing_ok=True)
    for sub in {p.parent for p in legacy}:
        with contextlib.suppress(OSError):
            sub.rmdir()


def _read_legacy_entry(data: bytes) -> np.ndarray | None:
    """One ``.emb`` file: magic, header length, JSON header (dtype, shape, bytes, digest), payload."""
    start = len(_LEGACY_MAGIC) + 4
    if len(data) < start or not data.startswith(_LEGACY_MAGIC):
        return None
    (header_len,) = struct.unpack("<I", data[len(_LEGACY_MAGIC) : start])
    try:
        header = json.loads(data[start : start + header_len])
        payload = data[start + header_len :]
        if len(payload) != header["nbytes"] or _digest(payload) != header["blake2b"]:
            return None
        return np.frombuffer(payload, dtype=np.dtype(header["dtype"])).reshape(header["shape"]).copy()
    except (ValueError, KeyError, TypeError):
        return None
