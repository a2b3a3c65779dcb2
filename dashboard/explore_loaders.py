"""Cached loaders of the Explore page: split tables, representation spaces, maps, indices, retrieval models.

Everything is computed by :mod:`core.explore`; these keep the results in memory for every
session (``st.cache_resource``: shared, read-only) on top of core's on-disk caches (embeddings,
maps, indices). Keys name what makes a value stale: checkpoint weights (SHA-256) and the
dataset's content fingerprint.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from core.card import CheckpointInfo
from core.checkpoints import LoadedCheckpoint
from core.data import Dataset
from core.encoders.cache import EmbeddingCache
from core.explore import (
    LoadedRetrieval,
    Projection,
    SplitSpaces,
    SplitTable,
    cached_projection,
    list_retrieval,
    load_retrieval,
    split_predictions,
    split_spaces,
    split_table,
)
from core.explore.index import VectorIndex
from core.explore.neighbors import space_index
from core.explore.projection import warm_up as projection_warm_up
from core.explore.retrieval import gallery_index
from core.explore.retrieval_model import RetrievalCard
from core.settings import settings
from dashboard.loaders import dataset_or_error, keep_for_the_process, load_model


def _dataset(root: str) -> Dataset:
    dataset = dataset_or_error(root)
    if isinstance(dataset, Exception):
        raise dataset
    return dataset


@st.cache_resource(show_spinner=False)
def warm_projector() -> threading.Thread:
    """Once per process, in the background: compile UMAP while the user is still browsing, so the
    first map they open is not the one that pays for it."""
    thread = threading.Thread(target=projection_warm_up, daemon=True, name="umap-warm-up")
    thread.start()
    return thread


@st.cache_resource(show_spinner=False, max_entries=8)
def _table(paths: tuple[str, ...], weights: tuple[str, ...], root: str, fingerprint: str, split: str) -> SplitTable:
    dataset = _dataset(root)
    cache = EmbeddingCache()
    return keep_for_the_process(
        lambda: split_table(dataset, split, [split_predictions(load_model(p), dataset, split, cache=cache) for p in paths])
    )


def table(dataset: Dataset, split: str, checkpoints: list[CheckpointInfo]) -> SplitTable:
    """The split as a table with each checkpoint's predictions (computed once per process)."""
    paths = tuple(str(c.path) for c in checkpoints)
    weights = tuple(load_model(p).card.sha256 for p in paths)
    return _table(paths, weights, str(dataset.root), dataset.fingerprint, split)


@st.cache_resource(show_spinner=False, max_entries=6)
def _spaces(path: str, sha256: str, root: str, fingerprint: str, split: str) -> SplitSpaces:
    return split_spaces(load_model(path), _dataset(root), split, cache=EmbeddingCache())


def spaces(loaded: LoadedCheckpoint, dataset: Dataset, split: str) -> SplitSpaces:
    """Every space of a checkpoint on a split (embeddings from the store, fused once)."""
    return _spaces(str(loaded.path.resolve()), loaded.card.sha256, str(dataset.root), dataset.fingerprint, split)


@st.cache_resource(show_spinner=False, max_entries=24)
def _projection(key: str, _spaces: SplitSpaces, space: str, method: str) -> Projection:
    return cached_projection(_spaces, space, method)


def projection(split_spaces_: SplitSpaces, space: str, method: str) -> Projection:
    """A 2-D map of one space (fitted once; core keeps it on disk across restarts)."""
    return _projection(split_spaces_.key(space, method), split_spaces_, space, method)


@st.cache_resource(show_spinner=False, max_entries=48)
def _index(key: str, _spaces: SplitSpaces, space: str) -> VectorIndex:
    return space_index(_spaces, space)


def index(split_spaces_: SplitSpaces, space: str) -> VectorIndex:
    """The nearest-neighbour index of one space (core keeps it on disk beside the embeddings)."""
    return _index(split_spaces_.key(space, "cosine-index"), split_spaces_, space)


@st.cache_resource(show_spinner=False, max_entries=24)
def _gallery(key: str, _retrieval: LoadedRetrieval, _spaces: SplitSpaces, query: str, target: str) -> VectorIndex:
    return gallery_index(_retrieval, _spaces, query, target)


def gallery(retrieval: LoadedRetrieval, split_spaces_: SplitSpaces, query: str, target: str) -> VectorIndex:
    """The index of a split's ``target`` items in a retrieval model's shared space."""
    key = f"{retrieval.card.sha256}|{split_spaces_.key(target, 'retrieval', query)}"
    return _gallery(key, retrieval, split_spaces_, query, target)


def retrieval_models() -> list[tuple[Path, RetrievalCard]]:
    """Readable retrieval checkpoints under ``FUSION_RETRIEVAL``."""
    return [(path, card) for path, card, error in list_retrieval(settings().retrieval_dir) if card is not None]


@st.cache_resource(show_spinner="Loading the retrieval model…", max_entries=8)
def _retrieval(path: str, sha256: str) -> LoadedRetrieval:
    return load_retrieval(path)


def retrieval_model(path: Path, card: RetrievalCard) -> LoadedRetrieval:
    return _retrieval(str(path.resolve()), card.sha256)
