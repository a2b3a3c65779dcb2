"""2-D maps of a representation space: UMAP (umap-learn), or PCA (scikit-learn) when asked or as a fallback.

A map is cached on disk as JSON, keyed by (checkpoint weights, dataset fingerprint, split,
space, method, seed), so a page shows it at once the second time. New samples (an upload)
are placed on a cached map without refitting and without a pickled reducer:

- PCA: the exact linear projection (the map stores the mean and the two components);
- UMAP: UMAP's own transform initialisation: the mean of the map positions of the sample's
  15 nearest fitted points (cosine, the metric the map was fitted with), weighted by UMAP's
  fuzzy membership strengths ``exp(-d / sigma)``, with ``sigma`` set so the weights sum to
  ``log2(15)`` as in ``umap.umap_.smooth_knn_dist``. ``UMAP.transform`` starts from this point
  and then nudges it for a few epochs; the nudge is left out, so a placed sample sits among
  its neighbours exactly where they are drawn.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import write_text_atomic
from core.errors import ExploreError
from core.explore.index import unit_rows
from core.explore.neighbors import IndexGetter, space_index
from core.explore.spaces import SplitSpaces
from core.serialization import JsonMixin
from core.settings import settings

METHODS = ("umap", "pca")
UMAP_NEIGHBORS = 15
UMAP_MIN_ROWS = 10
"""Below this many points UMAP's neighbour graph is meaningless: PCA is used instead."""


@dataclass
class Projection(JsonMixin):
    """2-D coordinates of one space's records.

    Attributes:
        method: what was asked (``umap`` or ``pca``); ``used``: what was run (PCA when UMAP fell back).
        ids: record ids, row ``i`` of ``coords`` is ``ids[i]``.
        coords: ``[n, 2]`` map positions.
        notes: what the space is, and why PCA stood in for UMAP if it did.
        pca_mean, pca_components: the PCA fit (``[d]`` and ``[2, d]``), to place new samples exactly.
    """

    checkpoint: str
    sha256: str
    dataset_fingerprint: str
    split: str
    space: str
    method: str
    used: str
    ids: list[str]
    coords: np.ndarray
    notes: list[str]
    seed: int = 0
    seconds: float = 0.0
    pca_mean: np.ndarray | None = None
    pca_components: np.ndarray | None = None


def _pca(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates, mean and components of a 2-component PCA (padded with zeros for rank < 2)."""
    from sklearn.decomposition import PCA

    mean = vectors.mean(axis=0)
    components = np.zeros((2, vectors.shape[1]))
    rank = min(2, len(vectors) - 1, vectors.shape[1])
    if rank > 0:
        components[:rank] = PCA(n_components=rank, svd_solver="full").fit(vectors).components_
    return (vectors - mean) @ components.T, mean, components


def _umap(vectors: np.ndarray, seed: int) -> np.ndarray:
    import umap

    with warnings.catch_warnings():  # "n_jobs overridden by random_state": the seed is the point
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(
            n_neighbors=min(UMAP_NEIGHBORS, len(vectors) - 1), metric="cosine", random_state=seed, min_dist=0.1
        )
        return np.asarray(reducer.fit_transform(vectors), dtype=np.float64)


def warm_up() -> None:
    """Pay UMAP's one-off costs now (numba compiles its graph and layout code on first use in a
    process: 10-20 s on two cores), so the first map a user asks for does not."""
    with contextlib.suppress(ImportError):  # without umap-learn, maps fall back to PCA
        _umap(np.random.default_rng(0).normal(size=(UMAP_MIN_ROWS * 3, 4)), seed=0)


def project(spaces: SplitSpaces, space: str, method: str = "umap", *, seed: int = 0) -> Projection:
    """Fit a 2-D map of one space (no cache: see :func:`projection`)."""
    if method not in METHODS:
        raise ExploreError(f"Unknown projection method {method!r}; choose from {', '.join(METHODS)}.")
    chosen = spaces.space(space)
    if not len(chosen):
        raise ExploreError(f"No record of {spaces.split} has a {space} vector to project.")
    started = time.perf_counter()
    vectors = chosen.vectors.astype(np.float64)
    coords, mean, components = _pca(vectors)
    notes, used = [chosen.note], "pca"
    if method == "umap":
        if len(vectors) < UMAP_MIN_ROWS:
            notes.append(f"PCA instead of UMAP: {len(vectors)} points are too few for UMAP (at least {UMAP_MIN_ROWS}).")
        else:
            try:
                coords, used = _umap(vectors, seed), "umap"
            except ImportError:
                notes.append("PCA instead of UMAP: umap-learn is not installed (pip install umap-learn).")
    return Projection(
        spaces.checkpoint,
        spaces.sha256,
        spaces.fingerprint,
        spaces.split,
        space,
        method,
        used,
        spaces.ids(space),
        coords,
        notes,
        seed,
        time.perf_counter() - started,
        mean,
        components,
    )


def projection_cache_path(spaces: SplitSpaces, space: str, method: str, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else settings().projection_cache_dir
    return folder / f"{spaces.key(space, method, seed)}.json"


def cached_projection(
    spaces: SplitSpaces, space: str, method: str = "umap", *, seed: int = 0, cache_dir: str | Path | None = None
) -> Projection:
    """:func:`project`, cached on disk by (checkpoint, dataset fingerprint, split, space, method, seed)."""
    path = projection_cache_path(spaces, space, method, seed, cache_dir)
    try:
        cached = Projection.from_json(path.read_text(encoding="utf-8"))
        if cached.ids == spaces.ids(space) and np.shape(cached.coords) == (len(cached.ids), 2):
            return cached
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        path.unlink(missing_ok=True)
    result = project(spaces, space, method, seed=seed)
    write_text_atomic(path, json.dumps(result.to_json()))
    return result


def _membership_weights(distances: np.ndarray) -> np.ndarray:
    """UMAP's fuzzy membership strengths of one point's neighbours, normalised to sum to 1."""
    target = np.log2(len(distances))
    low, high, sigma = 0.0, np.inf, 1.0
    for _ in range(64):  # binary search as in umap.umap_.smooth_knn_dist (local connectivity 0)
        total = np.exp(-distances / sigma).sum()
        if abs(total - target) < 1e-5:
            break
        if total > target:
            high = sigma
            sigma = (low + high) / 2
        else:
            low = sigma
            sigma = sigma * 2 if high == np.inf else (low + high) / 2
    weights = np.exp(-distances / sigma)
    return weights / weights.sum() if weights.sum() > 0 else np.full(len(distances), 1 / len(distances))


def place(
    result: Projection, spaces: SplitSpaces, vectors: np.ndarray, *, indexes: IndexGetter = space_index
) -> np.ndarray:
    """Map positions ``[q, 2]`` of new vectors of ``result``'s space (see the module docstring)."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    if result.used == "pca":
        return (vectors - result.pca_mean) @ np.asarray(result.pca_components).T
    index = indexes(spaces, result.space)
    distances, positions = index.search(unit_rows(vectors), min(UMAP_NEIGHBORS, index.size))
    coords = np.asarray(result.coords)
    placed = np.zeros((len(vectors), 2))
    for row in range(len(vectors)):
        keep = positions[row] >= 0
        weights = _membership_weights(np.maximum(distances[row][keep].astype(np.float64), 0.0))
        placed[row] = weights @ coords[positions[row][keep]]
    return placed
