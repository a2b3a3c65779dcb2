"""Strategy name -> class, and building a strategy from its name and config."""

from __future__ import annotations

from core.fusion import FUSION_NAMES
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
"""Strategy name -> class, in the order of :data:`~core.fusion.FUSION_NAMES`."""

if tuple(FUSIONS) != FUSION_NAMES:
    raise ImportError(f"core.fusion.FUSION_NAMES {FUSION_NAMES} does not list the strategies {tuple(FUSIONS)}.")


def build_fusion(name: str, **config) -> Fusion:
    """Instantiate a strategy by name from its ``config()``."""
    if name not in FUSIONS:
        raise ValueError(f"Unknown fusion strategy {name!r}; choose from {', '.join(FUSIONS)}.")
    return FUSIONS[name](**config)
