"""Nearest neighbours of a sample in each representation space, and how often neighbours share a label.

Distances are cosine distances (``1 - cos``) in the space's own vectors; the search runs
through :class:`core.explore.index.VectorIndex` (cached on disk per checkpoint, dataset,
split and space).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.explore.index import VectorIndex, cached_index
from core.explore.spaces import SplitSpaces
from core.serialization import JsonMixin

IndexGetter = Callable[[SplitSpaces, str], VectorIndex]


def space_index(spaces: SplitSpaces, space: str) -> VectorIndex:
    """The on-disk cached index of one space (the default :data:`IndexGetter`)."""
    return cached_index(spaces.key(space, "cosine-index"), spaces.space(space).vectors)


@dataclass
class Neighbor(JsonMixin):
    """One neighbour: a dataset record, its rank (1 = nearest) and cosine distance to the query."""

    id: str
    label: str
    split: str
    distance: float
    rank: int


@dataclass
class SpaceNeighbors(JsonMixin):
    """The ``k`` nearest records in one space, and the nearest one of another class than the reference."""

    space: str
    note: str
    neighbors: list[Neighbor]
    other_class: Neighbor | None = None


@dataclass
class NeighborReport(JsonMixin):
    """Neighbours of one query in every space it has.

    Attributes:
        reference_label: the class "another class" is taken against: the query's label when known,
            else the checkpoint's prediction (``reference`` says which).
    """

    checkpoint: str
    dataset_fingerprint: str
    index_split: str
    k: int
    query: str
    reference_label: str | None
    reference: str
    spaces: list[SpaceNeighbors] = field(default_factory=list)


def _neighbor(spaces: SplitSpaces, space: str, position: int, distance: float, rank: int) -> Neighbor:
    record = spaces.records[int(spaces.space(space).positions[position])]
    return Neighbor(record.id, record.label, record.split, round(float(distance), 6), rank)


def nearest_neighbors(
    index_spaces: SplitSpaces,
    vectors: dict[str, np.ndarray],
    k: int = 5,
    *,
    query: str = "",
    reference_label: str | None = None,
    reference: str = "label",
    exclude_id: str | None = None,
    indexes: IndexGetter = space_index,
) -> NeighborReport:
    """The ``k`` nearest records of ``index_spaces`` to a query, in every space the query has a vector for.

    Args:
        index_spaces: the searched records (e.g. the training split) in a checkpoint's spaces.
        vectors: space -> the query's vector (:func:`core.explore.spaces.sample_vectors`).
        reference_label: "another class" means another class than this one (``None``: the nearest
            neighbour's class).
        exclude_id: a record never returned (the query itself, when it is one of the searched records).
    """
    report = NeighborReport(
        index_spaces.checkpoint, index_spaces.fingerprint, index_spaces.split, k, query, reference_label, reference
    )
    for name in index_spaces.spaces:
        if name not in vectors or not len(index_spaces.spaces[name]):
            continue
        index = indexes(index_spaces, name)
        space = index_spaces.space(name)
        found: list[Neighbor] = []
        other: Neighbor | None = None
        wanted = min(index.size, 4 * k + 1)
        while True:
            distances, positions = index.search(vectors[name], wanted)
            ranked = [
                (d, p)
                for d, p in zip(distances[0], positions[0], strict=True)
                if p >= 0 and index_spaces.records[space.positions[p]].id != exclude_id
            ]
            found = [_neighbor(index_spaces, name, p, d, r + 1) for r, (d, p) in enumerate(ranked[:k])]
            anchor = reference_label if reference_label is not None else (found[0].label if found else None)
            other = next(
                (
                    _neighbor(index_spaces, name, p, d, r + 1)
                    for r, (d, p) in enumerate(ranked)
                    if index_spaces.records[space.positions[p]].label != anchor
                ),
                None,
            )
            if other is not None or wanted >= index.size:
                break
            wanted = min(index.size, wanted * 4)
        report.spaces.append(SpaceNeighbors(name, space.note, found, other))
    return report


@dataclass
class SpaceAgreement(JsonMixin):
    """How often the ``k`` nearest neighbours of the queries share their label, in one space.

    Attributes:
        queries: queries that have this space.
        agreement: mean share of a query's ``k`` neighbours with the query's label.
        majority_accuracy: share of queries whose neighbours' majority label is theirs (k-NN accuracy).
        chance: the agreement expected if neighbours were drawn at random from the searched records.
    """

    space: str
    queries: int
    agreement: float
    majority_accuracy: float
    chance: float


@dataclass
class AgreementReport(JsonMixin):
    """:class:`SpaceAgreement` of every space of one checkpoint, queries from one split, neighbours from another."""

    checkpoint: str
    dataset_fingerprint: str
    query_split: str
    index_split: str
    k: int
    spaces: list[SpaceAgreement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def by_space(self, space: str) -> SpaceAgreement:
        return next(s for s in self.spaces if s.space == space)


def neighbor_agreement(
    query_spaces: SplitSpaces, index_spaces: SplitSpaces, k: int = 5, *, indexes: IndexGetter = space_index
) -> AgreementReport:
    """For each query record, the share of its ``k`` nearest searched records that share its label.

    When queries and searched records are the same split, a query is never its own neighbour.
    """
    same = query_spaces.split == index_spaces.split
    report = AgreementReport(
        query_spaces.checkpoint, query_spaces.fingerprint, query_spaces.split, index_spaces.split, k
    )
    for name, queries in query_spaces.spaces.items():
        searched = index_spaces.spaces.get(name)
        if searched is None or not len(queries) or not len(searched):
            continue
        index = indexes(index_spaces, name)
        distances, positions = index.search(queries.vectors, min(index.size, k + int(same)))
        index_labels = np.array([index_spaces.records[i].label for i in searched.positions])
        query_labels = np.array([query_spaces.records[i].label for i in queries.positions])
        shares, majority = [], []
        for row, label in enumerate(query_labels):
            hits = positions[row][positions[row] >= 0]
            if same:  # drop the query itself (exact duplicates may come first in either order)
                hits = hits[searched.positions[hits] != queries.positions[row]]
            labels = index_labels[hits[:k]]
            shares.append(float(np.mean(labels == label)) if len(labels) else 0.0)
            majority.append(bool(len(labels)) and Counter(labels.tolist()).most_common(1)[0][0] == label)
        prior = Counter(index_labels.tolist())
        chance = float(np.mean([prior[label] / len(index_labels) for label in query_labels]))
        report.spaces.append(
            SpaceAgreement(name, len(query_labels), float(np.mean(shares)), float(np.mean(majority)), chance)
        )
        if len(searched) < k:
            report.notes.append(f"The {name} space of {index_spaces.split} has only {len(searched)} record(s) (< k={k}).")
    return report
