"""torch.distributed glue: one process per device under ``torchrun``, a no-op otherwise.

``torchrun --nproc_per_node N -m core train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`init_from_env` joins the process group
(NCCL on GPUs, gloo on CPU) and everything else asks :func:`context` who it is.

Batch jobs (embedding a dataset, evaluating a split) are sharded the same way whatever the
job: the rows to compute are cut into shards of consecutive rows, rank r takes shards r,
r + N, r + 2N, ... (:func:`my_rows`), and :func:`merge_rows` puts every rank's part back
together in row order, so each rank ends with what one process would have computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from core.settings import settings


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints and shows progress."""
        return self.rank == 0


def context() -> DistContext:
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), settings().distributed.local_rank)
    return DistContext()


def init_from_env() -> DistContext:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); idempotent."""
    env = settings().distributed
    if env.world_size <= 1 or not dist.is_available():
        return context()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group(backend=backend)
    return context()


def device_for_rank(device: torch.device) -> torch.device:
    """Each rank drives its own GPU (``cuda:LOCAL_RANK``); CPU ranks share the CPU."""
    ctx = context()
    if device.type == "cuda" and ctx.enabled:
        return torch.device("cuda", ctx.local_rank)
    return device


def barrier() -> None:
    if context().enabled:
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (just ``[obj]`` without a process group)."""
    ctx = context()
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` across ranks."""
    if not context().enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


SHARD_ROWS = 512
"""Consecutive rows in one shard of a batch job (fewer when there are too few rows to give every rank one)."""


def my_rows(n: int, size: int = SHARD_ROWS) -> list[int]:
    """The indices among ``range(n)`` this rank computes: every N-th shard of ``size`` consecutive
    indices, starting with shard ``rank`` (all of them without a process group)."""
    ctx = context()
    if not ctx.enabled:
        return list(range(n))
    size = max(1, min(size, math.ceil(n / ctx.world)))
    starts = range(ctx.rank * size, n, ctx.world * size)
    return [i for start in starts for i in range(start, min(start + size, n))]


def merge_rows(n: int, rows: list[int], values: np.ndarray) -> np.ndarray:
    """The ``[n, ...]`` array every rank computed part of (this rank: ``values``, the rows ``rows``
    of it), on every rank. Without a process group, ``values`` itself."""
    if not context().enabled:
        return values
    merged: np.ndarray | None = None
    for their_rows, part in all_gather_objects((list(rows), np.asarray(values))):
        if merged is None:
            merged = np.zeros((n, *part.shape[1:]), dtype=part.dtype)
        merged[their_rows] = part
    assert merged is not None
    return merged


def everywhere(flags: np.ndarray) -> np.ndarray:
    """``flags`` AND-ed across ranks: e.g. the cache hits every rank saw (ranks then agree on
    which rows still need computing, even while another process fills the cache)."""
    if not context().enabled:
        return flags
    return np.logical_and.reduce([np.asarray(f, dtype=bool) for f in all_gather_objects(np.asarray(flags, dtype=bool))])
