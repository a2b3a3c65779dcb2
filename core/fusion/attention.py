"""Cross-modal attention: a small transformer over one token per modality."""

from __future__ import annotations

import torch
from torch import nn

from core.fusion.base import Fusion


class AttentionFusion(Fusion):
    """Tokens = projected modality embeddings + modality-type embeddings, preceded by a
    learned [CLS] token; a pre-norm transformer encoder lets every modality attend to
    every other; the [CLS] output is the fused representation. Absent modalities enter
    as their learned missing embedding. Output: ``Tensor[B, hidden]``.
    """

    name = "attention"

    def __init__(
        self,
        in_dims: dict[str, int],
        num_classes: int,
        hidden: int = 128,
        dropout: float = 0.1,
        layers: int = 2,
        heads: int = 4,
    ):
        super().__init__(in_dims, num_classes, hidden, dropout)
        self.layers = layers
        self.heads = heads
        self.type_embedding = nn.Parameter(torch.randn(len(self.modalities), hidden) * 0.02)
        self.cls = nn.Parameter(torch.randn(hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=hidden * 2, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)

    def config(self) -> dict:
        return {**super().config(), "layers": self.layers, "heads": self.heads}

    def forward(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        h = self.projected(embeddings, present)
        tokens = torch.stack([h[m] for m in self.modalities], dim=1) + self.type_embedding.to(h[self.modalities[0]].dtype)
        cls = self.cls.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        out = self.encoder(torch.cat([cls, tokens], dim=1))
        return self.norm(out[:, 0])
