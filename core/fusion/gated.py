"""Gated fusion: the Gated Multimodal Unit (Arevalo et al., 2017), generalised to M modalities."""

from __future__ import annotations

import torch
from torch import nn

from core.fusion.base import Fusion


class GatedFusion(Fusion):
    """GMU: ``h_m = tanh(W_m x_m)``; gates ``z = softmax_m(W_z [x_1; ...; x_M])`` per feature;
    output ``sum_m z_m * h_m``. For two modalities the softmax over two gates equals the
    paper's sigmoid gate ``z, 1 - z``. Output: ``Tensor[B, hidden]``.
    """

    name = "gated"

    def __init__(self, in_dims: dict[str, int], num_classes: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__(in_dims, num_classes, hidden, dropout)
        self.transform = nn.ModuleDict({m: nn.Linear(hidden, hidden) for m in self.modalities})
        self.gate = nn.Linear(hidden * len(self.modalities), hidden * len(self.modalities))
        self.drop = nn.Dropout(dropout)

    def forward(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        x = self.projected(embeddings, present)
        h = torch.stack([torch.tanh(self.transform[m](x[m])) for m in self.modalities], dim=1)  # [B, M, d]
        z = self.gate(torch.cat([x[m] for m in self.modalities], dim=-1)).view_as(h)
        z = torch.softmax(z, dim=1)
        return self.drop((z * h).sum(dim=1))

    def gates(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Mean gate value per modality, ``Tensor[B, M]``: how much each modality was let through."""
        x = self.projected(embeddings, present)
        z = self.gate(torch.cat([x[m] for m in self.modalities], dim=-1)).view(-1, len(self.modalities), self.hidden)
        return torch.softmax(z, dim=1).mean(dim=-1)
