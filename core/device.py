"""The one place that picks the compute device and its precision settings."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from core.settings import settings


def pick_device(override: str | None = None) -> torch.device:
    """``cuda`` > ``mps`` > ``cpu``; ``override`` or the ``FUSION_DEVICE`` setting forces one.

    A forced device that is not available falls back to the CPU rather than failing,
    so a config written on a GPU machine still runs on a laptop.
    """
    wanted = override or settings().device
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


def input_bytes(value: object) -> int:
    """Bytes held by a tensor, or a dict/list of tensors (a prepared model input)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(input_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(input_bytes(v) for v in value)
    return 0


def memory_bounded_batch(device: torch.device, bytes_per_sample: int, requested: int, activation_factor: int = 64) -> int:
    """The largest batch up to ``requested`` that fits half the device's free memory.

    On CUDA the free memory is read now; each sample is assumed to need
    ``activation_factor`` times its input size (activations of a small encoder). Other
    devices get ``requested``. Callers still halve the batch on out-of-memory, since
    this is an estimate.
    """
    if device.type != "cuda" or bytes_per_sample <= 0:
        return requested
    free, _total = torch.cuda.mem_get_info(device)
    return max(1, min(requested, int(free * 0.5) // (bytes_per_sample * activation_factor)))


def move_to(value: Any, device: torch.device | str) -> Any:
    """Move a tensor, or a dict/list/tuple of tensors, to ``device``.

    On CUDA the host tensors are pinned first so the copy is asynchronous and overlaps compute.
    """
    device = torch.device(device)
    if isinstance(value, torch.Tensor):
        if device.type == "cuda" and value.device.type == "cpu":
            return value.pin_memory().to(device, non_blocking=True)
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(move_to(v, device) for v in value)
    return value
