"""The epoch loop: AdamW, cosine decay, modality dropout, early stopping, DDP under torchrun.

Rows are addressed by index into a :class:`TrainingSet`: frozen encoders' embeddings
come precomputed (cheap epochs), encoders being trained get their prepared inputs
(:func:`prepared_inputs`: decoded and prepared once, in worker processes, kept as one
tensor) and run in the loop. Under torchrun each rank takes its share of every global batch and
DistributedDataParallel averages the gradients, so N ranks see what one process sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from core import distributed
from core.data import Record, modality_values
from core.device import autocast, move_to
from core.encoders.base import Encoder
from core.inference import BatchSize, run_in_batches
from core.model import MultimodalClassifier
from core.parallel import prepared_chunks, workers_for
from core.settings import Limits
from core.train.augment import set_epoch
from core.train.config import TrainConfig
from core.train.events import ProgressCallback
from core.train.imbalance import balanced_order
from core.train.loss import MultiTaskLoss, Targets
from core.train.resume import FitState, load_fit_state, save_fit_state

PREPARE_CHUNK = 256
"""Inputs a worker prepares per round trip."""


class PreparedColumn(Sequence):
    """Prepared encoder inputs of one modality for N rows (``None`` where a row lacks it).

    Inputs of one shape (the built-in encoders') live in one stacked tensor, so 100,000
    rows are one allocation rather than 100,000 tensors; others stay a list.
    """

    def __init__(self, n: int, rows: Sequence[int], items: torch.Tensor | list[Any]):
        self.n = n
        self.position = torch.full((n,), -1, dtype=torch.long)
        self.position[torch.as_tensor(list(rows), dtype=torch.long)] = torch.arange(len(rows))
        self.items = items

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):  # type: ignore[override]
        where = int(self.position[index])
        return None if where < 0 else self.items[where]

    def batch(self, rows: list[int], encoder: Encoder) -> Any:
        """The encoder's batch input for ``rows`` (every one of them has the modality)."""
        where = self.position[torch.as_tensor(rows, dtype=torch.long)]
        if isinstance(self.items, torch.Tensor):
            return self.items[where]
        return encoder.collate([self.items[i] for i in where.tolist()])

    def subset(self, rows: torch.Tensor) -> PreparedColumn:
        where = self.position[rows]
        kept = (where >= 0).nonzero().flatten()
        items = self.items[where[kept]] if isinstance(self.items, torch.Tensor) else [self.items[i] for i in where[kept].tolist()]
        return PreparedColumn(len(rows), kept.tolist(), items)


def prepared_inputs(
    records: list[Record], encoder: Encoder, modality: str, limits: Limits, workers: int | None = None
) -> PreparedColumn:
    """Every record's ``modality`` decoded and prepared for ``encoder`` once, in worker processes
    (``None``: one per core; the result does not depend on how many)."""
    rows = [i for i, record in enumerate(records) if getattr(record, modality) is not None]
    values = modality_values([records[i] for i in rows], modality, limits)
    stacked: torch.Tensor | None = None
    items: list[Any] = []
    done = 0
    for chunk in prepared_chunks(values, encoder.prepare, PREPARE_CHUNK, workers_for(modality, workers)):
        if stacked is None and done == 0 and _same_shape(chunk):
            stacked = torch.empty((len(rows), *chunk[0].shape), dtype=chunk[0].dtype)
        if stacked is not None and _same_shape(chunk, like=stacked[0]):
            stacked[done : done + len(chunk)] = torch.stack(chunk)
        else:  # inputs of varying shapes: kept one by one
            if stacked is not None:
                items, stacked = list(stacked[:done]), None
            items.extend(chunk)
        done += len(chunk)
    return PreparedColumn(len(records), rows, stacked if stacked is not None else items)


def _same_shape(chunk: list[Any], like: torch.Tensor | None = None) -> bool:
    first = chunk[0] if like is None else like
    return isinstance(first, torch.Tensor) and all(
        isinstance(item, torch.Tensor) and item.shape == first.shape and item.dtype == first.dtype for item in chunk
    )


def _subset(column: PreparedColumn | Sequence[Any], rows: torch.Tensor) -> PreparedColumn | list[Any]:
    """Rows of one modality's inputs: a prepared column, or a per-row sequence (augmented inputs)."""
    return column.subset(rows) if isinstance(column, PreparedColumn) else [column[i] for i in rows.tolist()]


def _collated(column: PreparedColumn | Sequence[Any], rows: list[int], encoder: Encoder) -> Any:
    """The encoder's batch input of ``rows``: sliced from a prepared column, or collated from a
    per-row sequence (augmented inputs, drawn afresh each epoch)."""
    return column.batch(rows, encoder) if isinstance(column, PreparedColumn) else encoder.collate([column[i] for i in rows])


@dataclass
class TrainingSet:
    """Rows of one split: prepared inputs for encoders being trained, embeddings for frozen ones.

    Attributes:
        inputs: per modality being trained, its :class:`PreparedColumn` (or, for augmented
            training inputs, a per-row sequence that draws new transforms each epoch).
        embeddings: per frozen modality, ``Tensor[N, d]`` (zero rows where absent).
        present: ``BoolTensor[N, M]`` in the model's modality order.
        targets: task name -> (targets, known rows), see :mod:`core.train.loss`.
    """

    inputs: dict[str, PreparedColumn | Sequence[Any]]
    embeddings: dict[str, torch.Tensor]
    present: torch.Tensor
    targets: Targets

    def __len__(self) -> int:
        return int(self.present.shape[0])

    def rows(self, idx: torch.Tensor) -> TrainingSet:
        """The rows ``idx`` of this set."""
        return TrainingSet(
            {m: _subset(column, idx) for m, column in self.inputs.items()},
            {m: e[idx] for m, e in self.embeddings.items()},
            self.present[idx],
            {name: (y[idx], known[idx]) for name, (y, known) in self.targets.items()},
        )


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
            batch = _collated(data.inputs[m], idx[rows].tolist(), enc)
            full[rows.to(device)] = enc(move_to(batch, device)).to(full.dtype)
        out[m] = full
    return out


def _outputs(model: MultimodalClassifier, data: TrainingSet, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Every task's logits for every row (CPU, float32): encoders being trained run here too."""
    model.eval()

    def step(start: int, stop: int) -> torch.Tensor:
        idx = torch.arange(start, stop)
        with torch.inference_mode(), autocast(device):
            embeddings = _batch_embeddings(model, data, idx, data.present[idx], device)
            return model.classify(embeddings, data.present[idx]).float().cpu()

    chunks = run_in_batches(step, len(data), BatchSize(batch_size), device)
    return torch.cat(chunks) if chunks else torch.zeros(0, model.outputs)


class _TrainStep(nn.Module):
    """One forward pass and loss over batch rows ``idx``: the module DistributedDataParallel wraps
    (and whose state a resumed run restores: the model and the loss's learned task weights)."""

    def __init__(self, model: MultimodalClassifier, loss: MultiTaskLoss, data: TrainingSet, device: torch.device):
        super().__init__()
        self.model = model
        self.loss = loss
        self.data = data
        self.device = device

    def forward(self, idx: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        outputs = self.model.classify(_batch_embeddings(self.model, self.data, idx, present, self.device), present)
        targets = {
            name: (y[idx].to(self.device), known[idx].to(self.device)) for name, (y, known) in self.data.targets.items()
        }
        return self.loss(outputs.float(), targets)


def _outputs_distributed(model: MultimodalClassifier, data: TrainingSet, device: torch.device) -> torch.Tensor:
    """Validation outputs, each rank taking every world-th row, gathered in row order."""
    ctx = distributed.context()
    if not ctx.enabled:
        return _outputs(model, data, device)
    rows = torch.arange(ctx.rank, len(data), ctx.world)
    gathered = distributed.all_gather_objects((rows, _outputs(model, data.rows(rows), device)))
    out = torch.zeros(len(data), model.outputs)
    for r, outputs in gathered:
        out[r] = outputs
    return out


def validation_scores(
    model: MultimodalClassifier, loss: MultiTaskLoss, data: TrainingSet, device: torch.device
) -> dict[str, Any]:
    """``val_loss`` (mean of the tasks' losses), ``val_accuracy`` (of the primary task: exact-match
    accuracy at 0.5 for a multi-label one) and each task's loss (``val_task_losses``)."""
    outputs = _outputs_distributed(model, data, device)
    with torch.no_grad():  # task losses use no learned parameter: CPU outputs and targets suffice
        losses = {name: float(value) for name, value in loss.task_losses(outputs, data.targets).items()}
    primary = model.tasks[0]
    y, known = data.targets[primary.name]
    block = outputs[known][:, model.task_slices[primary.name]]
    exact = ((block > 0).float() == y[known]).all(dim=1) if primary.multi_label else None
    correct = exact if exact is not None else block.argmax(dim=1) == y[known]
    accuracy = float(correct.float().mean()) if len(correct) else float("nan")
    return {
        "val_loss": float(np.mean(list(losses.values()))) if losses else float("nan"),
        "val_accuracy": accuracy,
        "val_task_losses": losses,
    }


def fit(
    model: MultimodalClassifier,
    params: list[nn.Parameter],
    train: TrainingSet,
    val: TrainingSet,
    *,
    loss: MultiTaskLoss,
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
    ``loss`` weighs the model's tasks (its learned weights, if any, train with ``params``).
    Leaves the best epoch's weights in ``model`` and returns (history, best epoch).
    """
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DistributedSampler

    ctx = distributed.context()
    _seed_everything(config.seed)
    learned = [p for p in loss.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params + learned, lr=lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    trainer = _TrainStep(model, loss.to(device), train, device)
    step: nn.Module = trainer
    if ctx.enabled:
        step = DistributedDataParallel(trainer, device_ids=None, find_unused_parameters=True)
    state = FitState()
    if resume and state_dir is not None:
        state = load_fit_state(state_dir, trainer, optimizer, scheduler, state_key) or FitState()
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
        set_epoch(train.inputs, epoch)  # augmented inputs draw this epoch's transforms
        if config.balanced_sampler:
            mine = balanced_order(train.targets[model.tasks[0].name], config.seed, epoch, ctx.world)[ctx.rank :: ctx.world]
        else:
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
            with autocast(device):
                batch_loss = step(idx, present)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            total_loss += float(batch_loss.detach()) * len(idx)
            seen += len(idx)
        scheduler.step()
        total_loss, seen = distributed.all_reduce_sum([total_loss, seen])
        record = {"epoch": epoch, "train_loss": total_loss / max(seen, 1), **validation_scores(model, loss, val, device)}
        if len(model.tasks) == 1:
            del record["val_task_losses"]  # the same as val_loss
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
            save_fit_state(state_dir, state, trainer, optimizer, scheduler, state_key)
    bar.close()
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    model.eval()
    return state.history, state.best_epoch
