"""What every fusion strategy shares: per-modality projection and missing-modality embeddings."""

from __future__ import annotations

import copy

import torch
from torch import nn


class Fusion(nn.Module):
    """Base of all fusion strategies: one call signature for all of them.

    Each modality's embedding is projected to ``hidden`` dims (LayerNorm + Linear);
    where a modality is absent, its projection is replaced by a learned
    missing-modality embedding, so absence is a state the model was trained on
    (training applies modality dropout) rather than a zero vector pretending to be data.

    Args:
        in_dims: embedding size of each modality, e.g. ``{"audio": 128, "image": 128}``.
        num_classes: number of classes (strategies that output logits use it).
        hidden: common width after projection.
        dropout: dropout inside the strategy's MLPs.

    Inputs:
        embeddings: ``dict[str, Tensor[B, in_dims[m]]]``; rows of absent modalities are ignored.
        present: ``BoolTensor[B, M]``, columns in sorted modality order.

    Returns:
        ``Tensor[B, out_dim]``: fused features, or logits when ``outputs_logits`` is True.
    """

    name: str = ""
    outputs_logits: bool = False

    def __init__(self, in_dims: dict[str, int], num_classes: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.modalities = sorted(in_dims)
        self.in_dims = dict(in_dims)
        self.num_classes = num_classes
        self.hidden = hidden
        self.dropout = dropout
        self.project = nn.ModuleDict(
            {m: nn.Sequential(nn.LayerNorm(in_dims[m]), nn.Linear(in_dims[m], self.projection_dim)) for m in self.modalities}
        )
        self.missing = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(self.projection_dim) * 0.02) for m in self.modalities}
        )

    @property
    def projection_dim(self) -> int:
        return self.hidden

    @property
    def out_dim(self) -> int:
        return self.num_classes if self.outputs_logits else self.hidden

    def config(self) -> dict:
        """Constructor arguments, stored in the checkpoint card."""
        return {"in_dims": self.in_dims, "num_classes": self.num_classes, "hidden": self.hidden, "dropout": self.dropout}

    def taking_projections(self) -> Fusion:
        """A view of this fusion that takes each modality's projection (``project[m]``'s output)
        in place of its embedding: it shares every weight, with the projections replaced by
        the identity. Projection works row by row, so projecting rows once and then repeating,
        masking or mixing them equals projecting every repeat; see
        :func:`core.inference.on_projections`."""
        view = copy.copy(self)  # shares the parameter and submodule objects
        view._modules = {**self._modules, "project": nn.ModuleDict({m: nn.Identity() for m in self.modalities})}
        return view

    def projected(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> dict[str, torch.Tensor]:
        """Project each modality; absent rows take the learned missing embedding."""
        out = {}
        for i, m in enumerate(self.modalities):
            h = self.project[m](embeddings[m])
            mask = present[:, i : i + 1].to(h.dtype)
            out[m] = h * mask + self.missing[m].to(h.dtype).unsqueeze(0) * (1 - mask)
        return out


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))
