"""Fusion strategies, one module each, all with the signature of :class:`core.fusion.base.Fusion`.

Their names are known without importing torch (:data:`FUSION_NAMES`: a checkpoint card is
checked against them, and the dashboard's first page lists checkpoints); the classes,
``FUSIONS`` and ``build_fusion`` are imported when first read (:mod:`core.fusion.registry`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_exports

FUSION_NAMES = ("early", "late", "gated", "attention", "tensor", "lowrank")
"""Strategy names, in the order they are presented to users."""

if TYPE_CHECKING:
    from core.fusion.base import Fusion
    from core.fusion.registry import FUSIONS, build_fusion

__getattr__, __dir__ = lazy_exports(__name__, {"base": ["Fusion"], "registry": ["FUSIONS", "build_fusion"]})
__all__ = ["FUSIONS", "FUSION_NAMES", "Fusion", "build_fusion"]
