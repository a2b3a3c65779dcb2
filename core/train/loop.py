"""The epoch loop: AdamW, cosine decay, modality dropout, early stopping, DDP under torchrun.

Rows are addressed by index into a :class:`TrainingSet`: frozen encoders' embeddings
come precomputed (cheap epochs), encoders being trained get their prepared inputs and
run in the loop. Under torchrun each rank takes its share of every global batch and
DistributedDataParallel averages the gradients, so N ranks see what one process sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from core import distributed
from core.device import autocast, move_to
from core.encoders.base import Encoder
from core.evaluate.metrics import headline_metrics
from core.inference import classify_proba
from core.model import MultimodalClassifier
from core.train.config import TrainConfig
from core.train.events import ProgressCallback
from core.train.resume import FitState, load_fit_state, save_fit_state


@dataclass
class TrainingSet:
    """Rows of one split: prepared inputs for encoders being trained, embeddings for frozen ones.

    Attributes:
        inputs: per modality being trained, one prepared input per row (``None`` where absent).
        embeddings: per frozen modality, ``Tensor[N, d]`` (zero rows where absent).
        present: ``BoolTensor[N, M]`` in the model's modality order.
        labels: ``LongTensor[N]`` class indices.
    """

    inputs: dict[str, list[Any]]
    embeddings: dict[str, torch.Tensor]
    present: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


def _batch_embeddings(
    model: MultimodalClassifier, data: TrainingSet, idx: torch.Tensor, present: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    out = {}
    for j, m in enumerate(model.modalities):
        if m in data.embeddings:
            out[m] = data.embeddings[m][idx].to(device, non_blocking=True)
            continue
        enc: Encoder = model.encoders[m]
        rows = present[:, j].nonzero().flatten()
        full = torch.zeros(len(idx), enc.out_dim, device=device)
        if len(rows):
            batch = enc.collate([data.inputs[m][int(idx[r])] for r in rows])
            full[rows.to(device)] = enc(move_to(batch, device)).to(full.dtype)
        out[m] = full
    return out


def _predict(model: MultimodalClassifier, data: TrainingSet, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Probabilities of every row: encoders being trained run here, then :func:`classify_proba`."""
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in model.modalities}
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(data)))
            with autocast(device):
                for m, e in _batch_embeddings(model, data, idx, data.present[idx], device).items():
                    chunks[m].append(e.float())
    if not len(data):
        return np.zeros((0, len(model.classes)), dtype=np.float32)
    return classify_proba(model, {m: torch.cat(c) for m, c in chunks.items()}, data.present)


class _TrainStep(nn.Module):
    """One forward pass over batch rows ``idx``: the module DistributedDataParallel wraps."""

    def __init__(self, model: MultimodalClassifier, data: TrainingSet, device: torch.device):
        super().__init__()
        self.model = model
        self.data = data
        self.device = device

    def forward(self, idx: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return self.model.classify(_batch_embeddings(self.model, self.data, idx, present, self.device), present)


def _predict_distributed(model: MultimodalClassifier, data: TrainingSet, device: torch.device) -> np.ndarray:
    """Validation predictions, each rank taking every world-th row, gathered in row order."""
    ctx = distributed.context()
    if not ctx.enabled:
        return _predict(model, data, device)
    rows = torch.arange(ctx.rank, len(data), ctx.world)
    part = TrainingSet(
        {m: [v[i] for i in rows.tolist()] for m, v in data.inputs.items()},
        {m: e[rows] for m, e in data.embeddings.items()},
        data.present[rows],
        data.labels[rows],
    )
    gathered = distributed.all_gather_objects((rows.numpy(), _predict(model, part, device)))
    out = np.zeros((len(data), len(model.classes)), dtype=np.float32)
    for r, proba in gathered:
        out[r] = proba
    return out


def fit(
    model: MultimodalClassifier,
    params: list[nn.Parameter],
    train: TrainingSet,
    val: TrainingSet,
    *,
    epochs: int,
    lr: float,
    config: TrainConfig,
    modality_dropout: float,
    device: torch.device,
    label: str,
    show_progress: bool,
    callback: ProgressCallback | None,
    state_dir: Path | None = None,
    state_key: str = "",
    resume: bool = False,
) -> tuple[list[dict[str, float]], int]:
    """Train ``params`` of ``model`` with AdamW + cosine decay, early-stopping on validation loss.

    Under torchrun each rank takes its share of every global batch (a distributed sampler
    over the same seeded permutation) and DistributedDataParallel averages the gradients,
    so N ranks see the same batches as one process. After each epoch rank 0 writes the
    training state to ``state_dir``; with ``resume`` a saved state is continued.
    Leaves the best epoch's weights in ``model`` and returns (history, best epoch).
    """
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DistributedSampler

    ctx = distributed.context()
    _seed_everything(config.seed)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    step: nn.Module = _TrainStep(model, train, device)
    if ctx.enabled:
        step = DistributedDataParallel(step, device_ids=None, find_unused_parameters=True)
    state = FitState()
    if resume and state_dir is not None:
        state = load_fit_state(state_dir, model, optimizer, scheduler, state_key) or FitState()
    sampler = DistributedSampler(
        range(len(train)), num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=config.seed
    )
    per_rank_batch = max(1, config.batch_size // ctx.world)
    bar = tqdm(
        range(state.epoch + 1, epochs + 1),
        desc=label,
        unit="epoch",
        disable=not (show_progress and ctx.is_main),
        leave=True,
        initial=state.epoch,
        total=epochs,
    )
    for epoch in bar:
        if state.stale >= config.patience:
            break
        model.train()
        sampler.set_epoch(epoch)
        mine = torch.tensor(list(iter(sampler)), dtype=torch.long)
        # Dropout masks are drawn per sample and epoch, so every rank (and a resumed run)
        # drops the same modalities as a single uninterrupted process would.
        mask_gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        keep_all = torch.rand((len(train), train.present.shape[1]), generator=mask_gen) >= modality_dropout
        total_loss, seen = 0.0, 0
        for start in range(0, len(mine), per_rank_batch):
            idx = mine[start : start + per_rank_batch]
            present = train.present[idx]
            if modality_dropout > 0 and present.shape[1] > 1:
                present = present & keep_all[idx]
            y = train.labels[idx].to(device)
            with autocast(device):
                loss = loss_fn(step(idx, present).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            total_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
        scheduler.step()
        total_loss, seen = distributed.all_reduce_sum([total_loss, seen])
        val_metrics = headline_metrics(val.labels.numpy(), _predict_distributed(model, val, device))
        record = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "val_loss": val_metrics.get("log_loss", float("nan")),
            "val_accuracy": val_metrics.get("accuracy", float("nan")),
        }
        state.history.append(record)
        state.epoch = epoch
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{record['val_accuracy']:.3f}")
        if callback is not None and ctx.is_main:
            callback({"event": "epoch", "model": label, "epochs": epochs, **record})
        score = (record["val_loss"], -record["val_accuracy"])
        if score < state.best:
            state.best, state.best_epoch, state.stale = score, epoch, 0
            state.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state.stale += 1
        if state_dir is not None and ctx.is_main:
            save_fit_state(state_dir, state, model, optimizer, scheduler, state_key)
    bar.close()
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    return state.history, state.best_epoch
