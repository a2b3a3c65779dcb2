"""Retrieval metrics, each next to what a random ranking scores.

Two views of the same rankings (queries of one modality, a gallery of another, the rows
that have both):

- **instance level**, the standard where a row pairs one image with its own caption or sound:
  the right answer to a query is the gallery item of the same row. Recall@K (share of queries
  whose own item ranks in the top K; chance ``K/N``) and the median rank of that item (chance
  ``(N+1)/2``).
- **class level**, what a class-paired dataset can show (in the demo an image and an audio of
  one row share only their digit): a hit is any gallery item of the query's class. Where the
  manifest records the class each modality shows on its own (``<modality>_label``, as the
  demo does: on its synergy rows the picture and the voice show two different digits), that
  is each side's class; otherwise the row's label.
  Precision@K (chance: the share of the gallery with the query's label) and mean average
  precision over the whole ranking (chance: the exact expectation of AP under a random
  ranking, ``(H_N + (R-1)/(N-1) (N - H_N)) / N`` for ``R`` relevant items among ``N``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.serialization import JsonMixin

RECALL_KS = (1, 5, 10)
PRECISION_K = 10
CHUNK = 1024
"""Queries scored at once (bounds memory to ``CHUNK x N`` similarities)."""


@dataclass
class DirectionMetrics(JsonMixin):
    """Every figure of one retrieval direction (``query`` modality -> ``target`` modality).

    Attributes:
        recall, recall_chance: ``"1"``, ``"5"``, ``"10"`` -> instance-level Recall@K and its chance level.
        median_rank, median_rank_chance: rank of a query's own item (1 = first).
        precision, precision_chance: class-level precision@``k``.
        map, map_chance: class-level mean average precision.
    """

    query: str
    target: str
    queries: int
    gallery: int
    recall: dict[str, float]
    recall_chance: dict[str, float]
    median_rank: float
    median_rank_chance: float
    k: int
    precision: float
    precision_chance: float
    map: float
    map_chance: float

    @property
    def direction(self) -> str:
        return f"{self.query} → {self.target}"


@dataclass
class RetrievalReport(JsonMixin):
    """Metrics of every direction of a retrieval model on one split."""

    model: str
    dataset_fingerprint: str
    split: str
    directions: list[DirectionMetrics] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def direction(self, query: str, target: str) -> DirectionMetrics:
        return next(d for d in self.directions if (d.query, d.target) == (query, target))


def _random_ap(relevant: np.ndarray, n: int) -> np.ndarray:
    """Expected average precision of a random ranking of ``n`` items with ``relevant`` of them relevant."""
    harmonic = np.sum(1.0 / np.arange(1, n + 1))
    ratio = (relevant - 1) / (n - 1) if n > 1 else np.zeros_like(relevant, dtype=float)
    return np.where(relevant > 0, (harmonic + ratio * (n - harmonic)) / n, 0.0)


def direction_metrics(
    query_vectors: np.ndarray,
    gallery_vectors: np.ndarray,
    labels: list[str] | np.ndarray,
    *,
    query: str,
    target: str,
    k: int = PRECISION_K,
    gallery_labels: list[str] | np.ndarray | None = None,
) -> DirectionMetrics:
    """Score the rankings of ``gallery_vectors`` (unit rows) for each of ``query_vectors`` (unit rows).

    Row ``i`` of both is one dataset row: gallery item ``i`` is query ``i``'s own match,
    ``labels[i]`` the class query ``i`` shows and ``gallery_labels[i]`` (default: ``labels``)
    the class gallery item ``i`` shows.
    """
    labels = np.asarray(labels)
    gallery_labels = labels if gallery_labels is None else np.asarray(gallery_labels)
    n = len(labels)
    if n == 0 or len(query_vectors) != n or len(gallery_vectors) != n or len(gallery_labels) != n:
        raise ValueError("queries, gallery and labels must be the same non-empty rows")
    ranks = np.zeros(n)
    precision = np.zeros(n)
    average_precision = np.zeros(n)
    k = min(k, n)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        similarity = query_vectors[start:stop] @ gallery_vectors.T  # [q, N]
        own = similarity[np.arange(stop - start), np.arange(start, stop)]
        ranks[start:stop] = 1 + (similarity > own[:, None]).sum(axis=1)
        order = np.argsort(-similarity, axis=1, kind="stable")
        relevant = gallery_labels[order] == labels[start:stop, None]  # [q, N] in ranked order
        precision[start:stop] = relevant[:, :k].mean(axis=1)
        hits = np.cumsum(relevant, axis=1)
        precision_at = hits / np.arange(1, n + 1)
        totals = relevant.sum(axis=1)
        average_precision[start:stop] = np.where(
            totals > 0, (precision_at * relevant).sum(axis=1) / np.maximum(totals, 1), 0.0
        )
    counts = {label: int(c) for label, c in zip(*np.unique(gallery_labels, return_counts=True), strict=True)}
    relevant_counts = np.array([counts.get(label, 0) for label in labels])
    return DirectionMetrics(
        query=query,
        target=target,
        queries=n,
        gallery=n,
        recall={str(K): float(np.mean(ranks <= K)) for K in RECALL_KS},
        recall_chance={str(K): min(K, n) / n for K in RECALL_KS},
        median_rank=float(np.median(ranks)),
        median_rank_chance=(n + 1) / 2,
        k=k,
        precision=float(precision.mean()),
        precision_chance=float(np.mean(relevant_counts / n)),
        map=float(average_precision.mean()),
        map_chance=float(np.mean(_random_ap(relevant_counts, n))),
    )
