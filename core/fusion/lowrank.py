"""Low-rank multimodal fusion (LMF, Liu et al., 2018): TFN with rank-R factorised weights."""

from __future__ import annotations

import torch
from torch import nn

from core.fusion.base import Fusion


class LowRankFusion(Fusion):
    """The TFN weight tensor is factorised into per-modality factors ``W_m^(i)`` of shape
    ``(d+1) x hidden`` for ``i = 1..rank``; the fused vector is
    ``sum_i w_i * prod_m ([h_m; 1] W_m^(i)) + b`` and never materialises the outer product.
    Output: ``Tensor[B, hidden]``.
    """

    name = "lowrank"

    def __init__(self, in_dims: dict[str, int], num_classes: int, hidden: int = 128, dropout: float = 0.1, rank: int = 8):
        super().__init__(in_dims, num_classes, hidden, dropout)
        self.rank = rank
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, hidden + 1, hidden))) for m in self.modalities}
        )
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, rank)))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden)

    def config(self) -> dict:
        return {**super().config(), "rank": self.rank}

    def forward(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        h = self.projected(embeddings, present)
        fused = None
        for m in self.modalities:
            z = torch.cat([h[m], torch.ones_like(h[m][:, :1])], dim=-1)  # [B, d+1]
            per_rank = torch.einsum("bd,rdh->brh", z, self.factors[m].to(z.dtype))  # [B, R, hidden]
            fused = per_rank if fused is None else fused * per_rank
        out = torch.einsum("or,brh->bh", self.rank_weights.to(fused.dtype), fused) + self.bias.to(fused.dtype)
        return self.drop(torch.relu(self.norm(out)))
