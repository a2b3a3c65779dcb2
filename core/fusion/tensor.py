"""Tensor fusion (TFN, Zadeh et al., 2017): the outer product of [h_m; 1] over modalities."""

from __future__ import annotations

import math

import torch

from core.fusion.base import Fusion, mlp


class TensorFusion(Fusion):
    """Each modality is projected to a small ``rank_dim`` and extended with a constant 1,
    so the flattened outer product holds every unimodal, bimodal and trimodal
    interaction term; an MLP maps it to ``hidden``. Output: ``Tensor[B, hidden]``.
    """

    name = "tensor"

    def __init__(
        self, in_dims: dict[str, int], num_classes: int, hidden: int = 128, dropout: float = 0.1, rank_dim: int = 16
    ):
        self.rank_dim = rank_dim
        super().__init__(in_dims, num_classes, hidden, dropout)
        self.mix = mlp(math.prod(rank_dim + 1 for _ in self.modalities), hidden, hidden, dropout)

    @property
    def projection_dim(self) -> int:
        return self.rank_dim

    def config(self) -> dict:
        return {**super().config(), "rank_dim": self.rank_dim}

    def forward(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        h = self.projected(embeddings, present)
        outer = None
        for m in self.modalities:
            z = torch.cat([h[m], torch.ones_like(h[m][:, :1])], dim=-1)  # [B, r+1]
            outer = z if outer is None else (outer.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)
        return torch.relu(self.mix(outer))
