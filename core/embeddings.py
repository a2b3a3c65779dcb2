"""Embeddings of dataset records, computed once and kept in the embedding cache.

Training fusion heads, evaluating checkpoints and explaining samples all start from
per-modality embeddings. They are keyed by (encoder cache id, content hash of the file
or text), so retraining a fusion head or re-evaluating never re-encodes what was
already encoded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core import distributed
from core.data import Record, modality_values
from core.encoders.cache import EmbeddingCache
from core.inference import BatchSize, classify_proba, encode
from core.model import MultimodalClassifier
from core.parallel import workers_for
from core.settings import DEFAULT_LIMITS, Limits


@dataclass
class EmbeddedRecords:
    """Embeddings of N records.

    Attributes:
        embeddings: ``dict[str, Tensor[N, d_m]]`` (float32, CPU); zero rows where absent.
        present: ``BoolTensor[N, M]`` in the model's modality order.
        labels: ``LongTensor[N]`` class indices, -1 where the label is not a model class.
        ids: record ids, in order.
    """

    embeddings: dict[str, torch.Tensor]
    present: torch.Tensor
    labels: torch.Tensor
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> EmbeddedRecords:
        idx = torch.as_tensor(index, dtype=torch.long)
        return EmbeddedRecords(
            {m: e[idx] for m, e in self.embeddings.items()},
            self.present[idx],
            self.labels[idx],
            [self.ids[i] for i in idx.tolist()],
        )

    def with_present(self, present: torch.Tensor) -> EmbeddedRecords:
        """The same rows with another presence mask (e.g. some modalities marked absent)."""
        return EmbeddedRecords(self.embeddings, present, self.labels, self.ids)

    def with_embeddings(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor | None = None) -> EmbeddedRecords:
        """The same rows with some modalities' embeddings (and optionally the mask) replaced."""
        return EmbeddedRecords(
            {**self.embeddings, **embeddings}, self.present if present is None else present, self.labels, self.ids
        )


def labels_to_indices(labels: Sequence[str | None], classes: Sequence[str]) -> torch.Tensor:
    """Class indices of ``labels`` (``-1`` for a missing label or one not in ``classes``)."""
    lookup = {c: i for i, c in enumerate(classes)}
    return torch.tensor([lookup.get(label, -1) if label is not None else -1 for label in labels], dtype=torch.long)


def embed_records(
    model: MultimodalClassifier,
    records: Sequence[Record],
    *,
    cache: EmbeddingCache | None = None,
    limits: Limits = DEFAULT_LIMITS,
    batch: BatchSize | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    shard: bool = False,
    prepared: Mapping[str, Mapping[str, Any]] | None = None,
) -> EmbeddedRecords:
    """Embed every modality of ``records`` with ``model``'s encoders, reusing and filling ``cache``.

    Files are decoded and prepared by ``workers`` processes (``None``: one per core when there are
    enough misses; 0: here) while the encoder runs on the batches they finished. ``prepared``
    (modality -> content hash -> the encoder's prepared input, e.g. from
    :class:`core.train.ahead.InputsAhead`) spares those rows the decoding and preparing.
    ``progress(done, total)`` is called after each encoded batch (``total`` counts cache misses only,
    those of this rank with ``shard``).

    With ``shard`` under torchrun, every rank must call this with the same arguments: each encodes
    its shards of the cache misses (:func:`core.distributed.my_rows`), every rank receives all of
    them, and rank 0 alone writes them to ``cache``. The result equals a single process's.
    """
    device = model.device
    n = len(records)
    present = torch.tensor(
        [[getattr(r, m) is not None for m in model.modalities] for r in records], dtype=torch.bool
    ).reshape(n, len(model.modalities))
    embeddings: dict[str, torch.Tensor] = {}
    todo: dict[str, tuple[list[int], list[str]]] = {}
    for j, m in enumerate(model.modalities):
        encoder = model.encoders[m]
        rows = present[:, j].nonzero().flatten().tolist()
        keys = [records[i].content_hash(m) for i in rows]
        out = torch.zeros(n, encoder.out_dim)
        missing_rows, missing_keys = rows, keys
        if cache is not None and rows:
            found, hit = cache.get_many(encoder.cache_id(), keys, encoder.out_dim)
            if shard:  # what one rank found but another did not is computed again: ranks must agree
                hit = distributed.everywhere(hit)
            out[torch.tensor(rows)[torch.from_numpy(hit)]] = torch.from_numpy(found[hit])
            missing_rows = [r for r, h in zip(rows, hit, strict=True) if not h]
            missing_keys = [k for k, h in zip(keys, hit, strict=True) if not h]
        embeddings[m] = out
        todo[m] = (missing_rows, missing_keys)

    mine = {m: distributed.my_rows(len(rows)) if shard else list(range(len(rows))) for m, (rows, _) in todo.items()}
    total = sum(len(positions) for positions in mine.values())
    done = 0
    for m, (rows, keys) in todo.items():
        if not rows:
            continue
        encoder = model.encoders[m]
        values: Sequence[Any] = modality_values([records[rows[i]] for i in mine[m]], m, limits)
        by_key = (prepared or {}).get(m) or {}
        ready = [by_key.get(keys[i]) for i in mine[m]] if by_key else []
        prepare = None
        if any(item is not None for item in ready) and not encoder.prepares_on(device):  # a GPU prepares batches itself
            values = _ValuesOrReady(values, ready)
            prepare = _PrepareUnlessReady(encoder.prepare)
        base = done

        def report(count: int, base: int = base) -> None:
            if progress is not None:
                progress(base + count, total)

        fresh = encode(
            encoder, values, device, batch=batch or BatchSize(128), prepare=prepare, after_batch=report, workers=workers_for(m, workers)
        ).cpu()
        if shard:
            fresh = torch.from_numpy(distributed.merge_rows(len(rows), mine[m], fresh.numpy()))
        embeddings[m][torch.tensor(rows)] = fresh
        if cache is not None and (not shard or distributed.context().is_main):
            cache.put_many(encoder.cache_id(), keys, fresh.numpy())
        done += len(mine[m])
    labels = labels_to_indices([r.label for r in records], model.classes)
    return EmbeddedRecords(embeddings, present, labels, [r.id for r in records])


class _Ready:
    """An input already prepared, standing in for the value it was prepared from."""

    __slots__ = ("item",)

    def __init__(self, item: Any):
        self.item = item


class _ValuesOrReady(Sequence):
    """Values to decode, except where an input is ready (then a :class:`_Ready` holding it)."""

    def __init__(self, values: Sequence[Any], ready: list[Any]):
        self.values, self.ready = values, ready

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item = self.ready[index]
        return self.values[index] if item is None else _Ready(item)


class _PrepareUnlessReady:
    """``prepare(value)``, or the input a :class:`_Ready` holds (a class: workers may pickle it)."""

    def __init__(self, prepare: Callable[[Any], Any]):
        self.prepare = prepare

    def __call__(self, value: Any) -> Any:
        return value.item if isinstance(value, _Ready) else self.prepare(value)


def classify_embedded(model: MultimodalClassifier, data: EmbeddedRecords) -> np.ndarray:
    """Class probabilities ``[N, C]`` from precomputed embeddings (fusion + head only)."""
    return classify_proba(model, data.embeddings, data.present)
