"""Run any encoder over a list of decoded values, in batches, on any device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from core.device import move_to
from core.encoders.base import Encoder


def encode_values(
    encoder: Encoder,
    values: Sequence[Any],
    *,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Embed decoded values with ``encoder`` (which must already be on ``device``).

    Prepares each value on the CPU, collates ``batch_size`` at a time, and runs
    ``forward`` under ``torch.inference_mode()``; autocast to bfloat16 only on CUDA.

    Args:
        encoder: any :class:`~core.encoders.base.Encoder`.
        values: decoded values of the encoder's modality (N of them).
        batch_size: values per forward pass.
        device: where ``forward`` runs.

    Returns:
        ``float32`` CPU ``Tensor[N, encoder.out_dim]`` (``[0, out_dim]`` for no values).
    """
    device = torch.device(device)
    was_training = encoder.training
    encoder.eval()
    chunks: list[torch.Tensor] = []
    try:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            for start in range(0, len(values), batch_size):
                batch = encoder.collate([encoder.prepare(v) for v in values[start : start + batch_size]])
                chunks.append(encoder(move_to(batch, device)).float().cpu())
    finally:
        encoder.train(was_training)
    if not chunks:
        return torch.zeros(0, encoder.out_dim)
    return torch.cat(chunks)
