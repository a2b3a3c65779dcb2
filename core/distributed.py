"""torch.distributed glue: one process per device under ``torchrun``, a no-op otherwise.

``torchrun --nproc_per_node N -m core train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`init_from_env` joins the process group
(NCCL on GPUs, gloo on CPU) and everything else asks :func:`context` who it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
