"""faiss indices: exact and HNSW agree, cosine distances are right, the disk cache is checked."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ExploreError
from core.explore.index import VectorIndex, cached_index, unit_rows


def test_exact_search_returns_cosine_distances_in_order():
    vectors = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
    distances, positions = VectorIndex.build(vectors).search(np.array([2.0, 0.1]), 4)
    assert positions[0].tolist() == [0, 2, 1, 3]
    cosine = unit_rows(vectors) @ unit_rows(np.array([[2.0, 0.1]]))[0]
    assert distances[0] == pytest.approx(np.sort(1 - cosine), abs=1e-6)


def test_hnsw_above_the_threshold_finds_what_exact_search_finds():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    queries = vectors[:50] + 0.01 * rng.normal(size=(50, 16)).astype(np.float32)
    exact = VectorIndex.build(vectors)
    graph = VectorIndex.build(vectors, exact_max=100)
    assert (exact.kind, graph.kind) == ("exact", "hnsw")
    _, a = exact.search(queries, 10)
    _, b = graph.search(queries, 10)
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)])
    assert overlap > 0.95 and (b[:, 0] == np.arange(50)).all()


def test_k_is_capped_and_bad_queries_are_refused():
    index = VectorIndex.build(np.eye(3, dtype=np.float32))
    distances, positions = index.search(np.ones(3), 10)
    assert positions.shape == (1, 3)
    with pytest.raises(ExploreError, match="dimensions"):
        index.search(np.ones(4), 1)
    with pytest.raises(ExploreError, match="nothing to search"):
        VectorIndex.build(np.zeros((0, 3), dtype=np.float32))


def test_the_disk_cache_answers_the_same_and_rebuilds_what_does_not_match(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(100, 8)).astype(np.float32)
    first = cached_index("k", vectors, cache_dir=tmp_path)
    assert (tmp_path / "k.faiss").is_file() and (tmp_path / "k.json").is_file()
    again = cached_index("k", vectors, cache_dir=tmp_path)
    assert np.array_equal(first.search(vectors[:5], 5)[1], again.search(vectors[:5], 5)[1])

    (tmp_path / "k.faiss").write_bytes(b"garbage")  # a damaged file is rebuilt, not trusted
    repaired = cached_index("k", vectors, cache_dir=tmp_path)
    assert repaired.size == 100

    other = vectors[::-1].copy()  # the same key for other vectors never answers with the stale index
    assert cached_index("k", other, cache_dir=tmp_path).search(other[0], 1)[1][0, 0] == 0
