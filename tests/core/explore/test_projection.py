"""2-D maps: PCA is exact, UMAP separates clusters, maps are cached, new samples land among their kind."""

from __future__ import annotations

import numpy as np
import pytest

import core.explore.projection as projection_module
from core.errors import ExploreError
from core.explore.projection import Projection, cached_projection, place, project
from core.explore.spaces import FUSED
from tests.core.explore.conftest import clustered_spaces


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path))


def test_pca_coordinates_are_sklearns_and_new_points_are_projected_exactly(spaces):
    from sklearn.decomposition import PCA

    result = project(spaces, FUSED, "pca")
    vectors = spaces.space(FUSED).vectors.astype(np.float64)
    expected = PCA(n_components=2, svd_solver="full").fit_transform(vectors)
    assert result.used == "pca" and result.ids == spaces.ids(FUSED)
    assert np.allclose(np.abs(result.coords), np.abs(expected), atol=1e-6)
    assert np.allclose(place(result, spaces, vectors[:3]), result.coords[:3], atol=1e-9)


@pytest.mark.slow  # numba compiles UMAP on first use (10-90 s on 2 shared cores)
def test_umap_separates_clusters_and_places_a_member_among_them():
    spaces = clustered_spaces(per_class=30, classes=3, dim=16)
    result = project(spaces, FUSED, "umap", seed=0)
    assert result.used == "umap" and result.coords.shape == (90, 2)
    labels = np.array(spaces.labels(FUSED))
    centres = {label: result.coords[labels == label].mean(axis=0) for label in set(labels)}
    spread = max(np.linalg.norm(result.coords[labels == lab] - c, axis=1).max() for lab, c in centres.items())
    gap = min(np.linalg.norm(centres[a] - centres[b]) for a in centres for b in centres if a < b)
    assert gap > spread  # every cluster is drawn apart from the others

    new = spaces.space(FUSED).vectors[labels == "2"].mean(axis=0)  # the centre of class 2
    (x, y), = place(result, spaces, new)
    nearest = min(centres, key=lambda lab: np.linalg.norm(centres[lab] - (x, y)))
    assert nearest == "2"


def test_too_few_points_fall_back_to_pca_and_say_why():
    spaces = clustered_spaces(per_class=2, classes=2)
    result = project(spaces, FUSED, "umap")
    assert result.used == "pca" and any("too few" in note for note in result.notes)
    with pytest.raises(ExploreError, match="Unknown projection method"):
        project(spaces, FUSED, "tsne")


def test_maps_are_cached_on_disk_and_round_trip(spaces, monkeypatch, tmp_path):
    first = cached_projection(spaces, FUSED, "pca")
    monkeypatch.setattr(projection_module, "project", lambda *a, **k: pytest.fail("refitted a cached map"))
    again = cached_projection(spaces, FUSED, "pca")
    assert np.allclose(again.coords, first.coords) and again.ids == first.ids
    assert np.allclose(place(again, spaces, spaces.space(FUSED).vectors[5]), first.coords[5])
    assert Projection.from_json(first.to_json()).used == "pca"
    assert len(list((tmp_path / "projections").glob("*.json"))) == 1
