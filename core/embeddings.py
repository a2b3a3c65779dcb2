"""Embeddings of dataset records, computed once and cached on disk.

Training fusion heads, evaluating checkpoints and explaining samples all start
from per-modality embeddings. They are keyed by (encoder cache id, content hash
of the file or text), so retraining a fusion head or re-evaluating never
re-encodes what was already encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.data import Record, load_modality
from core.device import autocast, move_to
from core.encoders.cache import EmbeddingCache
from core.io import DEFAULT_LIMITS, Limits
from core.model import MultimodalClassifier


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

    def subset(self, index: torch.Tensor | np.ndarray | list[int]) -> EmbeddedRecords:
        idx = torch.as_tensor(index, dtype=torch.long)
        return EmbeddedRecords(
            {m: e[idx] for m, e in self.embeddings.items()},
            self.present[idx],
            self.labels[idx],
            [self.ids[i] for i in idx.tolist()],
        )


def labels_to_indices(labels: list[str | None], classes: list[str]) -> torch.Tensor:
    lookup = {c: i for i, c in enumerate(classes)}
    return torch.tensor([lookup.get(label, -1) if label is not None else -1 for label in labels], dtype=torch.long)


def embed_records(
    model: MultimodalClassifier,
    records: list[Record],
    *,
    cache: EmbeddingCache | None = None,
    batch_size: int = 128,
    limits: Limits = DEFAULT_LIMITS,
    progress: Callable[[int, int], None] | None = None,
) -> EmbeddedRecords:
    """Embed every modality of ``records`` with ``model``'s encoders, using ``cache`` when given.

    ``progress(done, total)`` is called after each encoded batch (total counts cache misses only).
    """
    device = model.device
    n = len(records)
    present = torch.zeros(n, len(model.modalities), dtype=torch.bool)
    embeddings: dict[str, torch.Tensor] = {}
    todo: dict[str, list[int]] = {}
    for j, m in enumerate(model.modalities):
        enc = model.encoders[m]
        out = torch.zeros(n, enc.out_dim)
        cache_id = enc.cache_id() if cache is not None else ""
        todo[m] = []
        for i, rec in enumerate(records):
            if getattr(rec, m) is None:
                continue
            present[i, j] = True
            hit = cache.get(cache_id, rec.content_hash(m)) if cache is not None else None
            if hit is not None and hit.shape == (enc.out_dim,):
                out[i] = torch.from_numpy(hit)
            else:
                todo[m].append(i)
        embeddings[m] = out

    total = sum(len(v) for v in todo.values())
    done = 0
    for m, rows in todo.items():
        enc = model.encoders[m]
        cache_id = enc.cache_id() if cache is not None else ""
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            values = [load_modality(records[i], m, limits) for i in chunk]
            inputs = enc.collate([enc.prepare(v) for v in values])
            with torch.inference_mode(), autocast(device):
                emb = enc(move_to(inputs, device)).float().cpu()
            embeddings[m][chunk] = emb
            if cache is not None:
                for i, row in zip(chunk, emb.numpy(), strict=False):
                    cache.put(cache_id, records[i].content_hash(m), row)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    labels = labels_to_indices([r.label for r in records], model.classes)
    return EmbeddedRecords(embeddings, present, labels, [r.id for r in records])


@torch.inference_mode()
def classify_embedded(model: MultimodalClassifier, data: EmbeddedRecords, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities ``[N, C]`` from precomputed embeddings (fusion + head only)."""
    device = model.device
    chunks = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        emb = {m: e[sl].to(device, non_blocking=True) for m, e in data.embeddings.items()}
        with autocast(device):
            logits = model.classify(emb, data.present[sl])
        chunks.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, len(model.classes)), dtype=np.float32)
