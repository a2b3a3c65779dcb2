"""The representation spaces of a checkpoint: each modality's embedding and the fused representation.

A *space* holds one vector per record that has it: a modality's space is that modality's
encoder embedding (from the embedding store, so nothing is re-encoded), the ``fused``
space is the fusion module's output before the head (:func:`core.inference.fuse`). For a
strategy whose fusion outputs class logits (``late``), the fused space is those combined
logits, and :attr:`Space.note` says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.card import encoder_label
from core.checkpoints import LoadedCheckpoint
from core.data import Dataset, Record
from core.data.manifest import SPLITS
from core.embeddings import EmbeddedRecords, embed_records
from core.encoders.cache import EmbeddingCache
from core.errors import ExploreError, UsageError
from core.inference import encode, fuse
from core.model import MultimodalClassifier
from core.sample import DecodedSample

FUSED = "fused"
ALL_SPLITS = "all"
SPLIT_CHOICES = (*SPLITS, ALL_SPLITS)
"""A split name, or ``all`` for every record of the dataset."""


def records_of(dataset: Dataset, split: str) -> list[Record]:
    """Records of one split, or of the whole dataset for ``all``."""
    if split == ALL_SPLITS:
        return list(dataset.records)
    if split not in SPLITS:
        raise UsageError(f"Unknown split {split!r}; expected one of {', '.join(SPLIT_CHOICES)}.")
    return dataset.split(split)


def space_names(model: MultimodalClassifier) -> list[str]:
    """The spaces of a model: its modalities (sorted), then ``fused``."""
    return [*model.modalities, FUSED]


def space_note(model: MultimodalClassifier, space: str) -> str:
    """What a space's vectors are, in one sentence for the user."""
    if space == FUSED:
        fusion = model.fusion
        if fusion.outputs_logits:
            return (
                f"The {fusion.name} fusion outputs class logits, so its fused space is those combined logits "
                f"({fusion.out_dim}-d), not a learned feature space."
            )
        return f"The {fusion.name} fusion module's output before the classification head ({fusion.out_dim}-d)."
    encoder = model.encoders[space]
    return f"The {space} encoder's embedding ({encoder_label(encoder.spec())}, {encoder.out_dim}-d)."


@dataclass
class Space:
    """One representation space of some records.

    Attributes:
        name: a modality or ``fused``.
        vectors: ``float32 [n, d]``, one row per record that has this space.
        positions: ``int64 [n]``, each row's index into the records.
        note: what the vectors are.
    """

    name: str
    vectors: np.ndarray
    positions: np.ndarray
    note: str = ""

    def __len__(self) -> int:
        return len(self.positions)


@dataclass
class SplitSpaces:
    """Every space of one checkpoint on one split (or ``all``) of a dataset.

    Attributes:
        checkpoint, sha256: the checkpoint's name and weights hash.
        fingerprint: the dataset's content fingerprint.
        split: ``train``, ``val``, ``test`` or ``all``.
        records: the records, in manifest order; ``Space.positions`` index into them.
        spaces: space name -> :class:`Space`.
    """

    checkpoint: str
    sha256: str
    fingerprint: str
    split: str
    records: list[Record]
    spaces: dict[str, Space]

    def space(self, name: str) -> Space:
        if name not in self.spaces:
            raise ExploreError(f"{self.checkpoint} has no {name!r} space; choose from {', '.join(self.spaces)}.")
        return self.spaces[name]

    def key(self, space: str, *parts: object) -> str:
        """A cache key naming this checkpoint, dataset content, split, space and ``parts``."""
        text = "|".join(str(p) for p in (self.sha256, self.fingerprint, self.split, space, *parts))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def labels(self, space: str) -> list[str]:
        return [self.records[i].label for i in self.space(space).positions]

    def ids(self, space: str) -> list[str]:
        return [self.records[i].id for i in self.space(space).positions]


def spaces_from_embedded(
    loaded: LoadedCheckpoint, dataset: Dataset, split: str, records: Sequence[Record], embedded: EmbeddedRecords
) -> SplitSpaces:
    """The spaces of records already embedded by ``loaded``'s encoders."""
    model = loaded.model
    spaces = {}
    for j, modality in enumerate(model.modalities):
        rows = embedded.present[:, j].nonzero().flatten()
        spaces[modality] = Space(
            modality,
            np.ascontiguousarray(embedded.embeddings[modality][rows].numpy(), dtype=np.float32),
            rows.numpy().astype(np.int64),
            space_note(model, modality),
        )
    fused = fuse(model, embedded.embeddings, embedded.present)
    spaces[FUSED] = Space(FUSED, np.ascontiguousarray(fused), np.arange(len(records), dtype=np.int64), space_note(model, FUSED))
    return SplitSpaces(loaded.name, loaded.card.sha256, dataset.fingerprint, split, list(records), spaces)


def split_spaces(
    loaded: LoadedCheckpoint, dataset: Dataset, split: str, *, cache: EmbeddingCache | None = None
) -> SplitSpaces:
    """Every space of ``loaded`` on a split: embeddings from (and into) the embedding store, then fusion.

    Raises:
        ExploreError: the split has no record.
    """
    records = records_of(dataset, split)
    if not records:
        raise ExploreError(f"Split {split!r} of {dataset.root.name} is empty (sizes: {dataset.split_sizes()}).")
    embedded = embed_records(loaded.model, records, cache=cache, limits=dataset.limits)
    return spaces_from_embedded(loaded, dataset, split, records, embedded)


def sample_vectors(loaded: LoadedCheckpoint, sample: DecodedSample) -> dict[str, np.ndarray]:
    """Space name -> the vector of one decoded sample, for the spaces it has (an upload, say).

    Each present modality is encoded through :func:`core.inference.encode`; the fused vector
    uses the learned missing-modality embeddings for the others, as the model does.
    """
    model = loaded.model
    embeddings, present = {}, torch.zeros(1, len(model.modalities), dtype=torch.bool)
    vectors: dict[str, np.ndarray] = {}
    for j, modality in enumerate(model.modalities):
        value = sample.get(modality)
        if value is None:
            embeddings[modality] = torch.zeros(1, model.encoders[modality].out_dim)
            continue
        embeddings[modality] = encode(model.encoders[modality], [value], model.device).float().cpu()
        present[0, j] = True
        vectors[modality] = embeddings[modality][0].numpy()
    if present.any():
        vectors[FUSED] = fuse(model, embeddings, present)[0]
    return vectors
