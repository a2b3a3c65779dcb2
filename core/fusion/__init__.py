"""Fusion strategies, one module each, all with the signature of :class:`core.fusion.base.Fusion`."""

from __future__ import annotations

from core.fusion.attention import AttentionFusion
from core.fusion.base import Fusion
from core.fusion.early import EarlyFusion
from core.fusion.gated import GatedFusion
from core.fusion.late import LateFusion
from core.fusion.lowrank import LowRankFusion
from core.fusion.tensor import TensorFusion

FUSIONS: dict[str, type[Fusion]] = {
    cls.name: cls for cls in (EarlyFusion, LateFusion, GatedFusion, AttentionFusion, TensorFusion, LowRankFusion)
}
"""Strategy name -> class, in the order they are presented to users."""


def build_fusion(name: str, **config) -> Fusion:
    """Instantiate a strategy by name from its ``config()``."""
    if name not in FUSIONS:
        raise ValueError(f"Unknown fusion strategy {name!r}; choose from {', '.join(FUSIONS)}.")
    return FUSIONS[name](**config)


__all__ = ["FUSIONS", "Fusion", "build_fusion"]
