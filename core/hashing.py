"""Content hashes: the one definition behind every cache key and fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def content_hash(value: Any) -> str:
    """SHA-256 hex of a value's content, never of where it came from.

    - ``bytes``: the bytes themselves (a file's content);
    - ``str``: its UTF-8 bytes (so a text and the file holding it hash alike);
    - an array: its dtype, shape and raw bytes (a decoded image or waveform).
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, str):
        return hashlib.sha256(value.encode("utf-8")).hexdigest()
    array = np.ascontiguousarray(value)
    digest = hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex of a file's content, read in 1 MiB blocks (equals ``content_hash(bytes)``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
