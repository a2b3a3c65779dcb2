"""Attention weights of the attention fusion strategy, exactly as the model computes them.

:class:`core.fusion.attention.AttentionFusion` runs a (pre-norm) ``nn.TransformerEncoder``
over ``[CLS]`` + one token per modality. ``nn.TransformerEncoderLayer`` never returns its
attention weights (it calls its attention with ``need_weights=False``), so each layer's
forward is reproduced here step by step with the layer's own modules, calling its
``self_attn`` with ``need_weights=True, average_attn_weights=False``. Every reproduced
layer output is compared with the real layer's output on the same input, and the final
fused vector with ``fusion(embeddings, present)``; a mismatch raises ``RuntimeError``
(the reproduction no longer matches the model: a bug to report, not a user's error).

Nothing is registered on the model and its mode is never changed: the functions only call
its modules, under ``torch.inference_mode()``. The model must already be in eval mode
(dropout would make the reproduction and the real forward differ).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from core.data import Dataset
from core.embeddings import embed_records
from core.encoders.cache import EmbeddingCache
from core.errors import ExplanationError
from core.fusion.attention import AttentionFusion
from core.model import MultimodalClassifier
from core.sample import DecodedSample

TOLERANCE = 1e-4
"""Largest absolute difference allowed between a reproduced and a real layer output."""


@dataclass
class AttentionMaps:
    """Attention weights of the fusion transformer.

    Attributes:
        weights: ``[layers, heads, T, T]``: row = query token, column = key token, each row
            sums to 1. For a batch, the mean over its rows.
        tokens: ``["[CLS]", *modalities]``, the order of the T axes.
        rows: samples averaged (1 for one sample).
        present: per modality, the fraction of those rows that have it (absent modalities
            still take part in attention, as their learned missing embedding).
        max_abs_error: largest difference between the reproduced and real layer outputs.
    """

    weights: np.ndarray
    tokens: list[str]
    rows: int
    present: dict[str, float]
    max_abs_error: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def cls_attention(self) -> np.ndarray:
        """``[layers, heads, T]``: how much [CLS] (whose output is the fused vector) attends to each token."""
        return self.weights[:, :, 0, :]

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights.tolist(),
            "tokens": list(self.tokens),
            "rows": self.rows,
            "present": dict(self.present),
            "max_abs_error": self.max_abs_error,
            "metadata": dict(self.metadata),
        }


def _fusion_of(model: MultimodalClassifier | AttentionFusion) -> AttentionFusion:
    fusion = model.fusion if isinstance(model, MultimodalClassifier) else model
    if not isinstance(fusion, AttentionFusion):
        raise ExplanationError(
            f"Attention maps need the attention fusion strategy, not {getattr(fusion, 'name', type(fusion).__name__)!r}."
        )
    if fusion.training:
        raise RuntimeError("The model is in training mode; attention maps are read in eval mode (no dropout).")
    return fusion


def layer_with_weights(layer: nn.TransformerEncoderLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``nn.TransformerEncoderLayer`` forward (eval mode, no masks) that also returns
    its attention weights ``[B, heads, T, T]``; ``x`` is ``[B, T, d]`` (batch first)."""
    if layer.norm_first:
        h = layer.norm1(x)
        attended, weights = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
        x = x + layer.dropout1(attended)
        x = x + layer._ff_block(layer.norm2(x))
    else:
        attended, weights = layer.self_attn(x, x, x, need_weights=True, average_attn_weights=False)
        x = layer.norm1(x + layer.dropout1(attended))
        x = layer.norm2(x + layer._ff_block(x))
    return x, weights


def attention_weights(
    model: MultimodalClassifier | AttentionFusion, embeddings: dict[str, torch.Tensor], present: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """Attention weights for B rows of embeddings.

    Args:
        model: a classifier with attention fusion, or the fusion module itself.
        embeddings: ``dict[str, Tensor[B, d_m]]`` (rows of absent modalities are ignored).
        present: ``BoolTensor[B, M]`` in sorted modality order.

    Returns:
        ``weights [B, layers, heads, T, T]`` (float32, on the model's device) and the largest
        difference between reproduced and real outputs (layers and the fused vector).

    Raises:
        RuntimeError: the reproduction differs from the real forward by more
            than ``TOLERANCE``.
    """
    fusion = _fusion_of(model)
    device = fusion.cls.device
    embeddings = {m: embeddings[m].to(device) for m in fusion.modalities}
    present = present.to(device)
    with torch.inference_mode():
        # AttentionFusion.forward up to its transformer, with the module's own parameters.
        h = fusion.projected(embeddings, present)
        tokens = torch.stack([h[m] for m in fusion.modalities], dim=1) + fusion.type_embedding.to(
            h[fusion.modalities[0]].dtype
        )
        cls = fusion.cls.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        x = torch.cat([cls, tokens], dim=1)
        error = 0.0
        per_layer = []
        for index, layer in enumerate(fusion.encoder.layers):
            reproduced, weights = layer_with_weights(layer, x)
            real = layer(x)
            layer_error = float((reproduced - real).abs().max())
            if not layer_error <= TOLERANCE:
                raise RuntimeError(
                    f"layer {index}: the reproduced forward differs from the real one by {layer_error:.2e}"
                )
            error = max(error, layer_error)
            per_layer.append(weights.float())
            x = real
        if fusion.encoder.norm is not None:
            x = fusion.encoder.norm(x)
        fused = fusion.norm(x[:, 0])
        real_fused = fusion(embeddings, present)
        fused_error = float((fused - real_fused).abs().max())
        if not fused_error <= TOLERANCE:
            raise RuntimeError(f"the fused vector differs from AttentionFusion's by {fused_error:.2e}")
        return torch.stack(per_layer, dim=1), max(error, fused_error)


def sample_attention(model: MultimodalClassifier, sample: DecodedSample) -> AttentionMaps:
    """Attention weights ``[layers, heads, T, T]`` for one decoded sample."""
    fusion = _fusion_of(model)
    batch = model.prepare([sample])
    with torch.inference_mode():
        embeddings = model.embed(batch)
    weights, error = attention_weights(model, embeddings, batch.present)
    return AttentionMaps(
        weights=weights[0].cpu().numpy().astype(np.float64),
        tokens=["[CLS]", *fusion.modalities],
        rows=1,
        present={m: float(batch.present[0, j]) for j, m in enumerate(fusion.modalities)},
        max_abs_error=error,
        metadata={"layers": fusion.layers, "heads": fusion.heads},
    )


def batch_attention(
    model: MultimodalClassifier | AttentionFusion,
    embeddings: dict[str, torch.Tensor],
    present: torch.Tensor,
    *,
    batch_size: int = 512,
) -> AttentionMaps:
    """Attention weights averaged over many rows of embeddings (e.g. a test split from
    :func:`core.embeddings.embed_records`), computed ``batch_size`` rows at a time.

    Args:
        embeddings: ``dict[str, Tensor[N, d_m]]``.
        present: ``BoolTensor[N, M]`` in sorted modality order.
    """
    fusion = _fusion_of(model)
    rows = int(present.shape[0])
    if rows == 0:
        raise ExplanationError("No rows to average attention over.")
    total = None
    error = 0.0
    for start in range(0, rows, batch_size):
        chunk = slice(start, start + batch_size)
        weights, chunk_error = attention_weights(fusion, {m: e[chunk] for m, e in embeddings.items()}, present[chunk])
        summed = weights.double().sum(dim=0)
        total = summed if total is None else total + summed
        error = max(error, chunk_error)
    presence = present.float().mean(dim=0)
    return AttentionMaps(
        weights=(total / rows).cpu().numpy(),
        tokens=["[CLS]", *fusion.modalities],
        rows=rows,
        present={m: float(presence[j]) for j, m in enumerate(fusion.modalities)},
        max_abs_error=error,
        metadata={"layers": fusion.layers, "heads": fusion.heads, "batch_size": batch_size},
    )


def split_attention(
    model: MultimodalClassifier, dataset: Dataset, split: str = "test", *, cache: EmbeddingCache | None = None
) -> AttentionMaps:
    """Attention weights averaged over a dataset split, from the embedding cache where it has them.

    Raises:
        ExplanationError: the model is not an attention fusion, or the split has no rows.
    """
    _fusion_of(model)
    records = dataset.split(split)
    if not records:
        raise ExplanationError(f"The split {split!r} has no rows to average attention over.")
    embedded = embed_records(model, records, cache=cache, limits=dataset.limits)
    maps = batch_attention(model, embedded.embeddings, embedded.present)
    maps.metadata["split"] = split
    return maps
