"""Every compression method, by name: adding one is one new module and one line here."""

from __future__ import annotations

from core.compress import COMPRESSION_METHODS
from core.compress.base import Compressor
from core.compress.distill import Distill
from core.compress.prune import Prune
from core.compress.quantize import Float16, Int8

COMPRESSORS: dict[str, Compressor] = {c.name: c for c in (Int8(), Float16(), Prune(), Distill())}
"""Method name -> compressor, in the order they are offered."""

if tuple(COMPRESSORS) != tuple(COMPRESSION_METHODS):
    raise ImportError(f"core.compress.COMPRESSION_METHODS {tuple(COMPRESSION_METHODS)} does not list the compressors {tuple(COMPRESSORS)}.")
