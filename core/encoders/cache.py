"""The embedding store: embeddings on disk, keyed by (encoder cache id, content hash).

Each encoder has a folder of **shards**. A shard is three files: ``shard-<id>.npy``
(``float32 [rows, dim]``), ``shard-<id>.keys.npy`` (its keys as fixed-width bytes, sorted,
row i holding the vector of key i) and ``shard-<id>.json`` (row count, dim and the
BLAKE2b digests of both arrays). Both arrays are read by memory map and a lookup is a
binary search in the sorted keys, so a store of 100,000 embeddings per encoder costs a
process a few open files, not a Python dict of 100,000 strings, and looking up a whole
split is a handful of vectorised searches.

A shard is written to temporary files and committed by renaming its JSON last, so a
reader sees a whole shard or none. The first process that opens a shard hashes it in
blocks (bounded memory) and, when the digests match and the files are a few seconds old,
leaves a stamp (``shard-<id>.ok``: the files' sizes, mtimes and inodes), so later processes
skip re-hashing hundreds of megabytes (a bit flipped on disk after that goes unseen); a shard whose bytes do not match (a crash on a file system without atomic
rename, a disk error, a foreign file) is deleted and its keys count as misses. One
``put_many`` writes one shard; past :data:`MAX_SHARDS` shards, the smaller half are merged
(size-tiered, so each vector is rewritten O(log n) times, never the whole store per put).
Folders of the earlier layouts (one ``<key[:2]>/<key>.emb`` file per embedding; shards
whose JSON lists their keys, unsorted) are read and migrated.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.atomic import write_bytes_atomic
from core.settings import settings

MAX_SHARDS = 64
"""Shards per encoder before the smaller ones are merged (keeps lookups and opening cheap)."""

STABLE_SECONDS = 2.0
"""A verified shard is stamped only once its files are this old."""
FORMAT = 2
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_LEGACY_MAGIC = b"FEMB1\n"
_BLOCK = 1 << 20


def _digest(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _file_digest(path: Path) -> str:
    """BLAKE2b of a file read in 1 MiB blocks (memory stays bounded for any shard)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _as_keys(keys: Sequence[str]) -> np.ndarray:
    """Keys as a fixed-width bytes array (how shards store them)."""
    return np.array([k.encode("utf-8") for k in keys], dtype=bytes) if len(keys) else np.zeros(0, "S1")


@dataclass
class _Shard:
    name: str
    keys: np.ndarray  # sorted, fixed-width bytes (memory-mapped for current shards)
    vectors: np.ndarray  # memory-mapped, float32 [rows, dim]
    order: np.ndarray | None = None  # row of each sorted key, for legacy shards stored unsorted

    def find(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(hit, row)`` for each key of ``query`` (fixed-width bytes)."""
        n = len(self.keys)
        if n == 0 or len(query) == 0:
            return np.zeros(len(query), bool), np.zeros(len(query), np.int64)
        fits = np.char.str_len(query) <= self.keys.dtype.itemsize  # longer keys cannot be here
        probe = query.astype(self.keys.dtype)
        position = np.minimum(np.searchsorted(self.keys, probe), n - 1)
        hit = fits & (self.keys[position] == probe)
        rows = position if self.order is None else self.order[position]
        return hit, rows


@dataclass
class _Encoder:
    """What one process knows of one encoder's folder: its shards, oldest name first."""

    folder: Path
    shards: dict[str, _Shard] = field(default_factory=dict)
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
        if not len(keys):
            return found, hit
        query = _as_keys(keys)
        with self._lock:
            state = self._state(cache_id)
            self._lookup(state, query, dim, found, hit)
            if not hit.all() and self._refresh(state):  # another process may have added shards
                self._lookup(state, query, dim, found, hit)
        return found, hit

    def count(self, cache_id: str) -> int:
        """Distinct keys stored for one encoder."""
        with self._lock:
            state = self._state(cache_id)
            self._refresh(state)
            if not state.shards:
                return 0
            return len(np.unique(np.concatenate([s.keys.astype(bytes) for s in state.shards.values()])))

    def verify(self, cache_id: str | None = None) -> list[str]:
        """Shards that fail their digests (deleted, as any reader would), of one encoder or all.

        Hashes every shard again, stamps or not (what a crash test or a suspicious user wants).
        """
        with self._lock:
            folders = [self.encoder_dir(cache_id)] if cache_id else sorted(p for p in self.root.glob("*") if p.is_dir())
            damaged = []
            for folder in folders:
                for meta in sorted(folder.glob("shard-*.json")):
                    name = meta.name[: -len(".json")]
                    (folder / f"{name}.ok").unlink(missing_ok=True)
                    if _open_shard(folder, name) is None:
                        damaged.append(str(meta.with_suffix("").relative_to(self.root)))
            self._encoders.clear()
            return damaged

    # ------------------------------------------------------------------ writing
    def put_many(self, cache_id: str, keys: Sequence[str], arrays: np.ndarray) -> None:
        """Store one vector per key (rows of ``arrays``) as one new shard; known keys are skipped."""
        arrays = np.asarray(arrays, dtype=np.float32)
        if arrays.ndim != 2 or len(arrays) != len(keys):
            raise ValueError(f"expected {len(keys)} vectors as a 2-D array, got shape {arrays.shape}")
        if not len(keys):
            return
        with self._lock:
            state = self._state(cache_id)
            self._refresh(state)
            query = _as_keys(keys)
            known = np.zeros(len(keys), bool)
            for shard in state.shards.values():
                known |= shard.find(query)[0]
            _, first = np.unique(query, return_index=True)  # a key given twice is stored once
            fresh = np.sort(first[~known[first]])
            if not len(fresh):
                return
            name = _write_shard(state.folder, query[fresh], arrays[fresh])
            label = state.folder / "cache_id.txt"
            if not label.exists():  # for humans clearing the cache: which encoder a folder belongs to
                write_bytes_atomic(label, cache_id.encode())
            self._add(state, name)
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

    @staticmethod
    def _lookup(state: _Encoder, query: np.ndarray, dim: int, found: np.ndarray, hit: np.ndarray) -> None:
        for shard in state.shards.values():
            if shard.vectors.shape[1] != dim:
                continue
            missing = np.flatnonzero(~hit)
            if not len(missing):
                return
            here, rows = shard.find(query[missing])
            take = missing[here]
            found[take] = shard.vectors[rows[here]]
            hit[take] = True

    def _refresh(self, state: _Encoder) -> bool:
        """Open the shards committed since the last look, forget vanished ones; whether anything changed."""
        if not state.folder.is_dir():
            return False
        on_disk = {p.name[: -len(".json")] for p in state.folder.glob("shard-*.json")}
        vanished = set(state.shards) - on_disk
        for name in vanished:
            del state.shards[name]
        added = sorted(on_disk - set(state.shards) - state.bad)
        for name in added:
            self._add(state, name)
        return bool(vanished or added)

    @staticmethod
    def _add(state: _Encoder, name: str) -> None:
        shard = _open_shard(state.folder, name)
        if shard is None:
            state.bad.add(name)
        else:
            state.shards[name] = shard

    def _compact(self, state: _Encoder) -> None:
        """Merge the smaller half of the shards into one, under a lock file so two processes do not
        both do it. Sizes stay tiered: a big shard is rewritten only once as many rows join it."""
        with _locked(state.folder / ".compact.lock") as acquired:
            if not acquired:
                return
            self._refresh(state)
            if len(state.shards) <= MAX_SHARDS:
                return
            by_size = sorted(state.shards.values(), key=lambda s: (len(s.keys), s.name))
            chosen = by_size[: len(by_size) - MAX_SHARDS // 2 + 1]
            dims = {s.vectors.shape[1] for s in chosen}
            if len(dims) > 1:  # vectors of another size (a changed encoder spec) are not merged
                keep = max(dims, key=lambda d: sum(len(s.keys) for s in chosen if s.vectors.shape[1] == d))
                chosen = [s for s in chosen if s.vectors.shape[1] == keep]
            keys = np.concatenate([s.keys.astype(bytes) for s in chosen])
            vectors = np.concatenate([_in_key_order(s) for s in chosen])
            merged = _write_shard(state.folder, keys, vectors)  # duplicates dropped there
            for shard in chosen:
                _remove_shard(state.folder, shard.name)
                del state.shards[shard.name]
            self._add(state, merged)


def _in_key_order(shard: _Shard) -> np.ndarray:
    return np.asarray(shard.vectors if shard.order is None else shard.vectors[shard.order])


def _shard_files(folder: Path, name: str) -> tuple[Path, Path, Path]:
    return folder / f"{name}.json", folder / f"{name}.npy", folder / f"{name}.keys.npy"


def _remove_shard(folder: Path, name: str) -> None:
    meta, vectors, keys = _shard_files(folder, name)
    meta.unlink(missing_ok=True)  # uncommit first, then the data
    for path in (vectors, keys, folder / f"{name}.ok"):
        path.unlink(missing_ok=True)


def _write_shard(folder: Path, keys: np.ndarray, vectors: np.ndarray) -> str:
    """Write a shard (keys sorted, duplicates dropped) then its JSON (the commit); returns its name."""
    folder.mkdir(parents=True, exist_ok=True)
    keys, first = np.unique(np.asarray(keys, dtype=bytes), return_index=True)
    vectors = np.ascontiguousarray(vectors[first], dtype=np.float32)
    name = f"shard-{os.getpid()}-{secrets.token_hex(6)}"
    meta, data_path, keys_path = _shard_files(folder, name)
    for path, array in ((data_path, vectors), (keys_path, keys)):
        tmp = folder / f".{path.name}.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
        os.replace(tmp, path)
    committed = {
        "format": FORMAT,
        "rows": int(len(keys)),
        "dim": int(vectors.shape[1]),
        "dtype": "float32",
        "blake2b": _file_digest(data_path),
        "keys_blake2b": _file_digest(keys_path),
    }
    write_bytes_atomic(meta, json.dumps(committed).encode())
    return name


def _signature(folder: Path, name: str) -> list[int]:
    out = []
    for path in _shard_files(folder, name)[1:]:
        if path.exists():
            stat = path.stat()
            out += [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    return out


def _stamp(folder: Path, name: str) -> None:
    """Record that the shard's files, as they are now, match their digests; not for files changed in
    the last :data:`STABLE_SECONDS` (a change within the timestamp granularity would keep the stamp)."""
    signature = _signature(folder, name)
    if max(signature[1::3], default=time.time_ns()) > time.time_ns() - STABLE_SECONDS * 1e9:
        return
    with contextlib.suppress(OSError):
        write_bytes_atomic(folder / f"{name}.ok", json.dumps(signature).encode())


def _stamped(folder: Path, name: str) -> bool:
    try:
        return json.loads((folder / f"{name}.ok").read_text()) == _signature(folder, name)
    except (OSError, ValueError):
        return False


def _open_shard(folder: Path, name: str) -> _Shard | None:
    """A committed shard, verified (or stamped as verified); ``None`` (and deleted) when damaged."""
    meta_path, data_path, keys_path = _shard_files(folder, name)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        vectors = np.load(data_path, mmap_mode="r")
        trusted = _stamped(folder, name)
        valid = isinstance(meta, dict) and vectors.dtype == np.float32 and vectors.ndim == 2
        valid = valid and (trusted or _file_digest(data_path) == meta.get("blake2b"))
        if valid and meta.get("format") == FORMAT:
            keys = np.load(keys_path, mmap_mode="r")
            valid = keys.dtype.kind == "S" and list(vectors.shape) == [len(keys), meta.get("dim")]
            valid = valid and (trusted or _file_digest(keys_path) == meta.get("keys_blake2b"))
            order = None
        elif valid:  # format 1: the keys listed in the JSON, in row order
            listed = _as_keys(list(meta.get("keys", [])))
            valid = list(vectors.shape) == [len(listed), meta.get("dim")]
            order = np.argsort(listed, kind="stable")
            keys = listed[order]
    except (OSError, ValueError, TypeError):
        valid = False
    if not valid:
        _remove_shard(folder, name)
        return None
    if not trusted:
        _stamp(folder, name)
    return _Shard(name, keys, vectors, order)


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
        _write_shard(folder, _as_keys(keys), np.stack(vectors))
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
