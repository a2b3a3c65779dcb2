"""Late fusion: one classifier per modality, logits combined with learned weights."""

from __future__ import annotations

import torch
from torch import nn

from core.fusion.base import Fusion, mlp


class LateFusion(Fusion):
    """Per-modality heads; their logits are averaged with softmax-normalised learned weights
    over the modalities present in each row. With no modality present the output is a learned
    class prior. Output: logits ``Tensor[B, num_classes]``.
    """

    name = "late"
    outputs_logits = True

    def __init__(self, in_dims: dict[str, int], num_classes: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__(in_dims, num_classes, hidden, dropout)
        self.heads = nn.ModuleDict({m: mlp(hidden, hidden, num_classes, dropout) for m in self.modalities})
        self.weight_logits = nn.Parameter(torch.zeros(len(self.modalities)))
        self.prior = nn.Parameter(torch.zeros(num_classes))

    def forward(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        h = self.projected(embeddings, present)
        logits = torch.stack([self.heads[m](h[m]) for m in self.modalities], dim=1)  # [B, M, C]
        scores = self.weight_logits.to(logits.dtype).expand(present.shape[0], -1)
        scores = scores.masked_fill(~present, float("-inf"))
        any_present = present.any(dim=1, keepdim=True)
        weights = torch.softmax(scores.masked_fill(~any_present, 0.0), dim=1) * present.to(logits.dtype)
        fused = (weights.unsqueeze(-1) * logits).sum(dim=1)
        return torch.where(any_present, fused, self.prior.to(fused.dtype).expand_as(fused))
