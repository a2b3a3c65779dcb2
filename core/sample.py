"""The sample contract shared by datasets, uploads, the model and explanations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODALITIES: tuple[str, ...] = ("audio", "image", "text")
"""Every modality the project knows, sorted: the canonical order of presence-mask columns."""


@dataclass
class Sample:
    """Raw inputs as a user or a dataset gives them. Any subset may be ``None`` (absent)."""

    image: bytes | None = None
    text: str | None = None
    audio: bytes | None = None
    label: str | None = None
    id: str | None = None

    def present(self) -> list[str]:
        return [m for m in MODALITIES if getattr(self, m) is not None]


@dataclass
class DecodedSample:
    """Decoded inputs: image RGB uint8 (H, W, 3), text str, audio mono float32 at 16 kHz."""

    image: np.ndarray | None = None
    text: str | None = None
    audio: np.ndarray | None = None
    label: str | None = None
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def present(self) -> list[str]:
        return [m for m in MODALITIES if getattr(self, m) is not None]

    def get(self, modality: str) -> Any:
        return getattr(self, modality)
