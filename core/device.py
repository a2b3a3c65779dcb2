"""The one place that picks the compute device and its precision settings."""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device(override: str | None = None) -> torch.device:
    """``cuda`` > ``mps`` > ``cpu``; ``override`` or env ``FUSION_DEVICE`` forces one.

    A forced device that is not available falls back to the CPU rather than failing,
    so a config written on a GPU machine still runs on a laptop.
    """
    wanted = override or os.environ.get("FUSION_DEVICE")
    if wanted:
        dev = torch.device(wanted)
        if dev.type == "cuda" and not torch.cuda.is_available():
            return torch.device("cpu")
        if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            return torch.device("cpu")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """Human name: the GPU's model name, or ``CPU (N threads)``."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); a no-op elsewhere."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors, which callers answer by halving the batch."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
