"""On-disk cache of embeddings, keyed by (encoder cache id, content hash).

Layout: ``<root>/<encoder dir>/<key[:2]>/<key>.emb``, one small file per embedding.
Each file is a magic string, a JSON header (dtype, shape, byte count, BLAKE2b digest)
and the raw array bytes, written to a temp file then ``os.replace``d into place, so a
reader sees either a whole entry or none. A file that fails any check (a crash on a
filesystem without atomic rename, a disk error, a foreign file) counts as a miss and is
deleted; a corrupt embedding is never returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import write_bytes_atomic
from core.encoders.base import Encoder
from core.encoders.batching import encode_values

MAGIC = b"FEMB1\n"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_REPO_ROOT = Path(__file__).resolve().parents[2]


def default_cache_root() -> Path:
    """``$FUSION_CACHE_DIR`` if set, else ``.cache/embeddings`` at the repository root."""
    override = os.environ.get("FUSION_CACHE_DIR")
    return Path(override).expanduser() if override else _REPO_ROOT / ".cache" / "embeddings"


def content_hash(value: Any) -> str:
    """Hex SHA-256 of a decoded value: an array's dtype, shape and bytes, or a text's UTF-8."""
    digest = hashlib.sha256()
    if isinstance(value, str):
        digest.update(b"text\0" + value.encode("utf-8"))
    else:
        array = np.ascontiguousarray(value)
        digest.update(f"array\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _checksum(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


class EmbeddingCache:
    """Embeddings on disk, one file per (cache id, key).

    Args:
        root: cache directory; ``None`` uses :func:`default_cache_root`.

    Example::

        cache = EmbeddingCache()
        key = content_hash(image)
        vector = cache.get(encoder.cache_id(), key)
        if vector is None:
            vector = ...  # compute it
            cache.put(encoder.cache_id(), key, vector)
    """

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def encoder_dir(self, cache_id: str) -> Path:
        """Directory of one encoder's entries: a readable prefix of the id plus its hash."""
        readable = _SAFE_NAME.sub("_", cache_id)[:48].strip("_.") or "encoder"
        return self.root / f"{readable}-{hashlib.sha256(cache_id.encode()).hexdigest()[:12]}"

    def path(self, cache_id: str, key: str) -> Path:
        # Keys are normally hex hashes; anything else is hashed so it cannot escape the directory.
        name = key if re.fullmatch(r"[0-9a-f]{16,128}", key) else hashlib.sha256(key.encode()).hexdigest()
        return self.encoder_dir(cache_id) / name[:2] / f"{name}.emb"

    def get(self, cache_id: str, key: str) -> np.ndarray | None:
        """The cached array, or ``None`` when missing or corrupt (a corrupt file is removed)."""
        path = self.path(cache_id, key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        array = self._decode(data)
        if array is None:
            path.unlink(missing_ok=True)
        return array

    def put(self, cache_id: str, key: str, array: np.ndarray) -> None:
        """Store ``array`` atomically, replacing any previous entry."""
        path = self.path(cache_id, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        label = path.parents[1] / "cache_id.txt"
        if not label.exists():
            # For humans clearing the cache: which encoder a directory belongs to.
            write_bytes_atomic(label, cache_id.encode())
        write_bytes_atomic(path, self._encode(array))

    def get_many(self, cache_id: str, keys: Sequence[str]) -> list[np.ndarray | None]:
        return [self.get(cache_id, key) for key in keys]

    def put_many(self, cache_id: str, keys: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
        for key, array in zip(keys, arrays, strict=True):
            self.put(cache_id, key, array)

    @staticmethod
    def _encode(array: np.ndarray) -> bytes:
        array = np.ascontiguousarray(array)
        payload = array.tobytes()
        header = json.dumps(
            {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "nbytes": len(payload),
                "blake2b": _checksum(payload),
            }
        ).encode()
        return MAGIC + struct.pack("<I", len(header)) + header + payload

    @staticmethod
    def _decode(data: bytes) -> np.ndarray | None:
        start = len(MAGIC) + 4
        if len(data) < start or not data.startswith(MAGIC):
            return None
        (header_len,) = struct.unpack("<I", data[len(MAGIC) : start])
        try:
            header = json.loads(data[start : start + header_len])
            payload = data[start + header_len :]
            if len(payload) != header["nbytes"] or _checksum(payload) != header["blake2b"]:
                return None
            return np.frombuffer(payload, dtype=np.dtype(header["dtype"])).reshape(header["shape"]).copy()
        except (ValueError, KeyError, TypeError):
            return None



def encode_cached(
    encoder: Encoder,
    values: Sequence[Any],
    cache: EmbeddingCache,
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """:func:`~core.encoders.batching.encode_values`, reusing and filling ``cache``.

    Only values whose embedding is not cached are encoded. Returns ``float32`` CPU
    ``Tensor[N, out_dim]`` in the order of ``values``.
    """
    cache_id = encoder.cache_id()
    keys = [content_hash(value) for value in values]
    cached = cache.get_many(cache_id, keys)
    missing = [i for i, array in enumerate(cached) if array is None]
    if missing:
        fresh = encode_values(encoder, [values[i] for i in missing], batch_size=batch_size, device=device)
        cache.put_many(cache_id, [keys[i] for i in missing], list(fresh.numpy()))
        for i, vector in zip(missing, fresh.numpy(), strict=True):
            cached[i] = vector
    if not values:
        return torch.zeros(0, encoder.out_dim)
    return torch.from_numpy(np.stack([np.asarray(a, dtype=np.float32) for a in cached]))
