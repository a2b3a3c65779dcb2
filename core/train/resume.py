"""Per-epoch training state on disk, so ``train --resume`` continues where a run was killed.

A state folder holds ``state.safetensors`` (model weights, best weights so far,
optimiser moments, the torch RNG) and ``state.json`` (epoch, history, early-stopping
counters, scheduler and optimiser hyper-parameters). It is written to a temporary
folder and renamed into place, so a kill at any moment leaves either the previous
epoch's state or the new one, never a mix; nothing is pickled.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.atomic import staged_folder

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"


@dataclass
class FitState:
    """What an interrupted fit needs to continue exactly as if it had not stopped."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: tuple[float, float] = (float("inf"), -1.0)
    best_epoch: int = 0
    stale: int = 0
    best_state: dict[str, torch.Tensor] | None = None


def save_fit_state(
    folder: Path,
    state: FitState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: str,
) -> None:
    """Atomically replace ``folder`` with the state after ``state.epoch``."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {f"model/{k}": v for k, v in model.state_dict().items()}
    if state.best_state is not None:
        tensors.update({f"best/{k}": v for k, v in state.best_state.items()})
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, slot in opt["state"].items():
        for key, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{pid}/{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    tensors["rng/torch"] = torch.get_rng_state()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {
        "fingerprint": fingerprint,
        "epoch": state.epoch,
        "history": state.history,
        "best": list(state.best),
        "best_epoch": state.best_epoch,
        "stale": state.stale,
        "has_best": state.best_state is not None,
        "scheduler": scheduler.state_dict(),
        "optimizer_param_groups": opt["param_groups"],
        "optimizer_scalars": scalars,
    }
    with staged_folder(folder) as tmp:
        save_file(tensors, str(tmp / STATE_TENSORS))
        (tmp / STATE_JSON).write_text(json.dumps(meta))


def load_fit_state(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: str,
) -> FitState | None:
    """Restore a saved state into ``model``/``optimizer``/``scheduler``; ``None`` when there is
    no usable state (missing, unreadable, or saved for another configuration)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        meta = json.loads((folder / STATE_JSON).read_text())
        tensors = load_file(str(folder / STATE_TENSORS))
    except (OSError, ValueError, SafetensorError):
        return None
    if meta.get("fingerprint") != fingerprint:
        return None
    model_state = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        model.load_state_dict(model_state)
    except RuntimeError:
        return None
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, pid, name = key.split("/", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    for pid, extra in meta["optimizer_scalars"].items():
        opt_state.setdefault(int(pid), {}).update(extra)
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["optimizer_param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng/torch"])
    best_state = (
        {k[len("best/") :]: v for k, v in tensors.items() if k.startswith("best/")} if meta["has_best"] else None
    )
    return FitState(
        epoch=meta["epoch"],
        history=meta["history"],
        best=tuple(meta["best"]),
        best_epoch=meta["best_epoch"],
        stale=meta["stale"],
        best_state=best_state,
    )


def clear_fit_state(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
