"""Cosine nearest-neighbour indices over fixed vectors (faiss), cached on disk beside the embeddings.

Below :data:`EXACT_MAX_ROWS` vectors the search is exact (``IndexFlatIP`` on unit vectors:
one matrix product, and faster than a graph at these sizes); above it, an HNSW graph
(``IndexHNSWFlat``) answers in about constant time with a bounded amount of memory
(the vectors plus ``2 * HNSW_M`` links per vector). ``python -m bench explore`` measures
both across sizes; the threshold is where the graph starts to pay off.

An index file is faiss's own binary format (never a pickle), written atomically with a JSON
sidecar holding its size, dimension, kind and BLAKE2b digest; a file that does not match its
sidecar is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import write_bytes_atomic, write_text_atomic
from core.errors import ExploreError
from core.settings import settings

EXACT_MAX_ROWS = 50_000
"""Largest index searched exhaustively (see the module docstring and ``python -m bench explore``)."""
HNSW_M = 32
HNSW_EF_SEARCH = 128


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``float32`` copy of ``vectors`` with every row scaled to unit length (zero rows stay zero)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ExploreError(f"Expected a 2-D array of vectors, got shape {vectors.shape}.")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


@dataclass
class VectorIndex:
    """A faiss index over ``size`` unit vectors of dimension ``dim``; ``kind`` is ``exact`` or ``hnsw``."""

    index: object
    size: int
    dim: int
    kind: str

    @classmethod
    def build(cls, vectors: np.ndarray, exact_max: int = EXACT_MAX_ROWS) -> VectorIndex:
        import faiss

        data = unit_rows(vectors)
        size, dim = data.shape
        if size == 0:
            raise ExploreError("There is nothing to search: no vector in this space.")
        if size <= exact_max:
            index, kind = faiss.IndexFlatIP(dim), "exact"
        else:
            index, kind = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT), "hnsw"
            index.hnsw.efSearch = HNSW_EF_SEARCH
        index.add(data)
        return cls(index, size, dim, kind)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest stored vectors of each query: cosine distances ``[q, k]`` (ascending) and
        positions ``[q, k]`` (``-1`` where fewer than ``k`` were found)."""
        queries = unit_rows(np.atleast_2d(queries))
        if queries.shape[1] != self.dim:
            raise ExploreError(f"Query vectors have {queries.shape[1]} dimensions; the index holds {self.dim}.")
        k = max(1, min(int(k), self.size))
        similarity, positions = self.index.search(queries, k)
        return (1.0 - similarity).astype(np.float32), positions.astype(np.int64)

    def to_bytes(self) -> bytes:
        import faiss

        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, kind: str) -> VectorIndex:
        import faiss

        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        if kind == "hnsw":
            index.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index, int(index.ntotal), int(index.d), kind)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def cached_index(
    key: str, vectors: np.ndarray, *, cache_dir: str | Path | None = None, exact_max: int = EXACT_MAX_ROWS
) -> VectorIndex:
    """The index of ``vectors`` stored under ``key`` (which must name what the vectors are), built and
    written on a miss. The sidecar also records a digest of the vectors, so a key reused for other
    vectors never answers with a stale index."""
    folder = Path(cache_dir) if cache_dir is not None else settings().index_cache_dir
    data_path, meta_path = folder / f"{key}.faiss", folder / f"{key}.json"
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    vectors_digest = _digest(vectors.tobytes())
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = data_path.read_bytes()
        if meta.get("vectors") == vectors_digest and meta.get("blake2b") == _digest(data):
            index = VectorIndex.from_bytes(data, meta["kind"])
            if (index.size, index.dim) == tuple(vectors.shape):
                return index
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        pass  # missing, unreadable or foreign: rebuilt below
    index = VectorIndex.build(vectors, exact_max)
    data = index.to_bytes()
    write_bytes_atomic(data_path, data)
    meta = {"size": index.size, "dim": index.dim, "kind": index.kind, "vectors": vectors_digest, "blake2b": _digest(data)}
    write_text_atomic(meta_path, json.dumps(meta))  # the sidecar last: it commits the index
    return index
