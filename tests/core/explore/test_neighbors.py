"""Nearest neighbours of a query per space, the nearest of another class, and label agreement."""

from __future__ import annotations

import numpy as np
import pytest

from core.explore.index import cached_index
from core.explore.neighbors import nearest_neighbors, neighbor_agreement
from core.explore.spaces import FUSED
from tests.core.explore.conftest import clustered_spaces


@pytest.fixture(autouse=True)
def private_indices(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path))


def test_neighbours_of_a_record_share_its_cluster_and_exclude_itself(spaces):
    query = spaces.space(FUSED).vectors[4]  # record r4, label "1"
    report = nearest_neighbors(spaces, {FUSED: query, "image": query}, 5, reference_label="1", exclude_id="r4")
    fused = next(s for s in report.spaces if s.space == FUSED)
    assert [n.rank for n in fused.neighbors] == [1, 2, 3, 4, 5]
    assert {n.label for n in fused.neighbors} == {"1"} and "r4" not in {n.id for n in fused.neighbors}
    assert all(a.distance <= b.distance for a, b in zip(fused.neighbors, fused.neighbors[1:], strict=False))
    assert fused.other_class is not None and fused.other_class.label != "1" and fused.other_class.rank > 5
    image = next(s for s in report.spaces if s.space == "image")
    assert all(int(n.id[1:]) % 2 == 0 for n in image.neighbors)  # only records that have an image


def test_a_space_the_query_lacks_is_skipped():
    spaces = clustered_spaces()
    report = nearest_neighbors(spaces, {FUSED: spaces.space(FUSED).vectors[0]}, 3)
    assert [s.space for s in report.spaces] == [FUSED]
    assert report.spaces[0].other_class.label != report.spaces[0].neighbors[0].label  # anchored on the nearest


def test_agreement_is_perfect_on_separated_clusters_and_chance_is_the_class_prior():
    train, test = clustered_spaces(split="train"), clustered_spaces(split="test", seed=0)
    report = neighbor_agreement(test, train, k=5)
    fused = report.by_space(FUSED)
    assert (fused.agreement, fused.majority_accuracy, fused.queries) == (1.0, 1.0, 60)
    assert fused.chance == pytest.approx(1 / 3)


def test_agreement_within_one_split_never_counts_a_query_as_its_own_neighbour():
    spaces = clustered_spaces(per_class=2, classes=2, spread=0.0)  # two identical points per class
    report = neighbor_agreement(spaces, spaces, k=1)
    assert report.by_space(FUSED).agreement == 1.0  # its twin, not itself

    noisy = clustered_spaces(per_class=30, classes=3, spread=50.0, seed=3)  # clusters drowned in noise
    assert neighbor_agreement(noisy, noisy, k=5).by_space(FUSED).agreement < 0.6


def test_the_index_getter_is_what_searches(spaces, tmp_path):
    calls = []

    def getter(s, name):
        calls.append(name)
        return cached_index(f"t-{name}", s.space(name).vectors, cache_dir=tmp_path)

    nearest_neighbors(spaces, {FUSED: np.ones(8, dtype=np.float32)}, 2, indexes=getter)
    assert calls == [FUSED]
