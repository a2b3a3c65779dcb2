"""A small image CNN trained from scratch on 32x32 thumbnails."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.encoders.base import Encoder, state_fingerprint


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # GroupNorm, not BatchNorm: an embedding must not depend on the other samples in the
    # batch, and batch-1 inference (uploads, explanations) must match batched training.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.GroupNorm(8, out_channels),
        nn.ReLU(inplace=True),
    )


class BuiltinImageEncoder(Encoder):
    """Three conv blocks (16/32/64 channels, each followed by a 2x2 max-pool) over a 32x32 RGB
    thumbnail, then a linear layer on the flattened 4x4 feature map.

    Flattening (rather than global pooling) keeps where strokes are, which is what tells
    small images such as digits apart, and the narrow blocks keep CPU training fast.

    Args:
        image_size: side of the square thumbnail every image is resized to (a multiple of 8).
        channels: output channels of the conv blocks.
        out_dim: embedding size.

    Inputs of ``forward``: ``Tensor[B, 3, image_size, image_size]`` in [0, 1].
    Output: ``Tensor[B, out_dim]``.
    """

    modality = "image"
    trainable = True

    def __init__(self, image_size: int = 32, channels: tuple[int, ...] = (16, 32, 64), out_dim: int = 128):
        super().__init__()
        self.image_size = image_size
        self.channels = tuple(channels)
        self.out_dim = out_dim
        layers: list[nn.Module] = []
        in_channels = 3
        for width in self.channels:
            layers += [_conv_block(in_channels, width), nn.MaxPool2d(2)]
            in_channels = width
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(self.channels)
        self.head = nn.Linear(in_channels * side * side, out_dim)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "builtin",
            "image_size": self.image_size,
            "channels": list(self.channels),
            "out_dim": self.out_dim,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> BuiltinImageEncoder:
        return cls(image_size=spec["image_size"], channels=tuple(spec["channels"]), out_dim=spec["out_dim"])

    def prepare(self, value: np.ndarray) -> torch.Tensor:
        """RGB ``uint8`` (H, W, 3) -> ``Tensor[3, image_size, image_size]`` in [0, 1] (PIL bilinear)."""
        array = np.asarray(value, dtype=np.uint8)
        if array.shape != (self.image_size, self.image_size, 3):
            # Already the right size needs no resize (PIL would return a copy); explanations
            # prepare a thousand perturbed copies per sample, so the round trip matters.
            image = Image.fromarray(array).convert("RGB")
            array = np.asarray(image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR))
        array = array.astype(np.float32) / 255.0
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(batch).flatten(1))

    def cache_id(self) -> str:
        return f"builtin-image:{state_fingerprint(self, self.spec())}"
