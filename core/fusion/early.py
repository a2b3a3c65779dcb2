"""Early fusion: concatenate the projected modality embeddings and mix them with an MLP."""

from __future__ import annotations

import torch

from core.fusion.base import Fusion, mlp


class EarlyFusion(Fusion):
    """Concat + MLP. Output: ``Tensor[B, hidden]``."""

    name = "early"

    def __init__(self, in_dims: dict[str, int], num_classes: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__(in_dims, num_classes, hidden, dropout)
        self.mix = mlp(hidden * len(self.modalities), hidden * 2, hidden, dropout)

    def forward(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        h = self.projected(embeddings, present)
        return torch.relu(self.mix(torch.cat([h[m] for m in self.modalities], dim=-1)))
