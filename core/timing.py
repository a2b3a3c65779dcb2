"""Wall-clock timing that is honest on a GPU: every measurement ends with a device sync."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a timer measures compute and not kernel launches."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """``(fn(), seconds)`` with the device synchronised before and after."""
    synchronize(device)
    started = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - started


def repeat_timed(
    fn: Callable[[], Any],
    device: torch.device,
    *,
    min_repeats: int = 3,
    min_seconds: float = 0.5,
    max_repeats: int = 1000,
) -> list[float]:
    """Seconds of each call of ``fn``: at least ``min_repeats`` calls and ``min_seconds`` in all.

    The caller warms ``fn`` up first (lazy initialisation, kernel selection, caches).
    """
    times: list[float] = []
    while len(times) < max_repeats and (len(times) < min_repeats or sum(times) < min_seconds):
        times.append(timed(fn, device)[1])
    return times


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """Median and 95th percentile in milliseconds, and how many calls they summarise."""
    array = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "median_ms": round(float(np.median(array)), 3),
        "p95_ms": round(float(np.percentile(array, 95)), 3),
        "repeats": len(seconds),
    }
