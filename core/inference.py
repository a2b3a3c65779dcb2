"""The one batched inference path: encoders, fusion heads and whole models.

Every prediction, embedding, evaluation and explanation runs through these functions:
batches under ``torch.inference_mode()``, autocast only on CUDA (:func:`core.device.autocast`),
probabilities as float32 softmax on the CPU, and a batch that runs out of device memory
is halved and retried (the smaller size is kept for the rest of the call, and for later
calls that share the same :class:`BatchSize`).

>>> probabilities = predict_proba(loaded.model, [sample])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from core.device import autocast, is_out_of_memory, move_to
from core.encoders.base import Encoder
from core.model import MultimodalClassifier
from core.parallel import prepared_chunks
from core.sample import DecodedSample
from core.serialization import JsonMixin
from core.tasks import Task

T = TypeVar("T")

CLASSIFY_BATCH = 4096
"""Rows per fusion + head call: cheap on embeddings, so only memory bounds it."""


@dataclass
class BatchSize:
    """A batch size that out-of-memory errors shrink; share one to keep the lesson across calls."""

    value: int

    def __post_init__(self) -> None:
        self.value = max(1, int(self.value))


def run_in_batches(
    step: Callable[[int, int], T],
    total: int,
    batch: BatchSize,
    device: torch.device,
    *,
    before_batch: Callable[[], None] | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> list[T]:
    """``step(start, stop)`` over ``range(total)`` in batches of ``batch.value``.

    A batch that runs out of device memory is retried at half the size (down to 1, where
    the error is raised). ``before_batch`` runs before each batch (a cancel check raises
    there); ``after_batch(done)`` after each one, with the rows done so far.
    """
    outputs: list[T] = []
    start = 0
    while start < total:
        if before_batch is not None:
            before_batch()
        size = min(batch.value, total - start)
        try:
            outputs.append(step(start, start + size))
        except Exception as err:
            if not is_out_of_memory(err) or size == 1:
                raise
            batch.value = max(1, size // 2)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        start += size
        if after_batch is not None:
            after_batch(start)
    return outputs


def encode(
    encoder: Encoder,
    values: Sequence[Any],
    device: torch.device,
    *,
    batch: BatchSize | None = None,
    prepare: Callable[[Any], Any] | None = None,
    before_batch: Callable[[], None] | None = None,
    after_batch: Callable[[int], None] | None = None,
    workers: int | None = 0,
) -> torch.Tensor:
    """Embeddings ``float32 [len(values), out_dim]`` on ``device`` of decoded ``values``.

    Args:
        encoder: an encoder in eval mode, already on ``device`` (it is not modified).
        values: decoded inputs of its modality (a lazy sequence is read batch by batch).
        prepare: turns one value into encoder input (default ``encoder.prepare``, or the encoder's
            batched device path, :meth:`~core.encoders.base.Encoder.prepare_batch`, where it has one).
        workers: processes that read ``values`` and prepare them ahead of the encoder (``None``:
            one per core when the job is big enough, see :mod:`core.parallel`; 0: here).
    """
    batch = batch or BatchSize(256)
    on_device = prepare is None and encoder.prepares_on(device)
    per_item = _unchanged if on_device else (prepare or encoder.prepare)

    def forward(items: list[Any]) -> torch.Tensor:
        inputs = encoder.prepare_batch(items, device) if on_device else encoder.collate(items)
        with torch.inference_mode(), autocast(device):
            return encoder(move_to(inputs, device)).float()

    if workers == 0:
        chunks = run_in_batches(
            lambda start, stop: forward([per_item(v) for v in values[start:stop]]),
            len(values), batch, device, before_batch=before_batch, after_batch=after_batch,
        )  # fmt: skip
    else:
        in_workers = _Forward(encoder) if encodes_in_workers(device, on_device, before_batch) else None
        chunks, done = [], 0
        for items in prepared_chunks(values, per_item, batch.value, workers, finish=in_workers):
            if in_workers is not None:  # the worker ran the encoder: these are its embeddings
                chunks.append(items)
            else:  # An out-of-memory batch is halved within the chunk the workers prepared.
                chunks += run_in_batches(lambda a, b, items=items: forward(items[a:b]), len(items), batch, device, before_batch=before_batch)
            done += len(items)
            if after_batch is not None:
                after_batch(done)
    return torch.cat(chunks) if chunks else torch.zeros(0, encoder.out_dim, device=device)


def encodes_in_workers(device: torch.device, on_device: bool, before_batch: Callable[[], None] | None) -> bool:
    """Whether :func:`encode`'s workers also run the encoder on the chunks they prepared: on a
    CPU, when nothing must run in this process before each batch. One single-threaded model
    per core keeps every core busy; one model spread over the cores' threads, fed by the
    workers, kept two cores 175% busy (10,000 rows, stage 2 of training). Forked workers share
    the weights; workers started by the fork server (a dashboard request) get a copy each."""
    return device.type == "cpu" and not on_device and before_batch is None


class _Forward:
    """A chunk of prepared inputs -> their embeddings (in a worker: one thread, no gradients)."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder

    def __call__(self, items: list[Any]) -> torch.Tensor:
        with torch.no_grad():  # not inference_mode: the result goes back through shared memory
            return self.encoder(self.encoder.collate(items)).float()


class ForwardEach:
    """A chunk of rows, each a list of prepared inputs (one per variant: a corruption's
    severities) -> one embeddings tensor per variant (in a worker, like :class:`_Forward`)."""

    def __init__(self, encoder: Encoder):
        self.forward = _Forward(encoder)

    def __call__(self, rows: list[list[Any]]) -> list[torch.Tensor]:
        return [self.forward([row[k] for row in rows]) for k in range(len(rows[0]))] if rows else []


def _unchanged(value: Any) -> Any:
    """What workers do to values the encoder prepares on the device itself: nothing."""
    return value


def task_output(model: MultimodalClassifier, outputs: torch.Tensor, task: str | Task | None, logits: bool) -> torch.Tensor:
    """One task's block of the concatenated outputs: its logits, or its probabilities
    (softmax over the block for a single-label task, a sigmoid per label for a multi-label one)."""
    task = task if isinstance(task, Task) else model.task(task)
    block = outputs[:, model.task_slices[task.name]]
    if logits:
        return block
    return torch.sigmoid(block) if task.multi_label else torch.softmax(block, dim=-1)


def classify_proba(
    model: MultimodalClassifier,
    embeddings: dict[str, torch.Tensor],
    present: torch.Tensor,
    *,
    batch: BatchSize | None = None,
    logits: bool = False,
    task: str | Task | None = None,
) -> np.ndarray:
    """Fusion + head on embeddings: one task's probabilities ``[N, C]`` (float32, CPU), or its logits.

    ``task`` defaults to the primary one. ``embeddings`` may live on the CPU (an embedding
    store) or the device (an explanation).
    """

    chosen = task if isinstance(task, Task) else model.task(task)

    def head(chunk: dict[str, torch.Tensor], rows_present: torch.Tensor) -> torch.Tensor:
        return task_output(model, model.classify(chunk, rows_present).float(), chosen, logits)

    return _on_embeddings(model, head, embeddings, present, len(chosen.classes), batch)


def fuse(
    model: MultimodalClassifier,
    embeddings: dict[str, torch.Tensor],
    present: torch.Tensor,
    *,
    batch: BatchSize | None = None,
) -> np.ndarray:
    """The fusion module's output before the head: ``float32 [N, fusion.out_dim]`` on the CPU.

    The fused representation of each row (class logits for strategies whose fusion
    outputs logits, see ``model.fusion.outputs_logits``).
    """

    def fused(chunk: dict[str, torch.Tensor], rows_present: torch.Tensor) -> torch.Tensor:
        return model.fusion(chunk, rows_present.to(model.device)).float()

    return _on_embeddings(model, fused, embeddings, present, model.fusion.out_dim, batch)


def on_projections(
    model: MultimodalClassifier, embeddings: dict[str, torch.Tensor], *, batch: BatchSize | None = None
) -> tuple[MultimodalClassifier, dict[str, torch.Tensor]]:
    """Each modality's embeddings through the fusion's projection once, and a view of the model
    that classifies from those projections (:meth:`MultimodalClassifier.taking_projections`).

    ``view.classify(projections, present)`` equals ``model.classify(embeddings, present)`` up to
    float rounding, but analyses that classify the same rows many times (every coalition of
    modalities, EMAP's row x reference pairs, permutations, missing-modality subsets) skip the
    projection of each repeat, most of a fusion head's work. Projections are float32 on the CPU.

    A dynamically quantised (int8) projection scales each batch by its own range, so it does not
    work row by row: such a model and its embeddings are returned unchanged.
    """
    from core.compress.storage import is_quantized  # core.compress builds on this module

    if is_quantized(model.fusion.project):
        return model, embeddings
    device = model.device
    projections = {}
    for m in model.modalities:
        rows = embeddings[m]

        def step(start: int, stop: int, project=model.fusion.project[m], rows=rows) -> torch.Tensor:
            with torch.inference_mode(), autocast(device):
                return project(rows[start:stop].to(device, non_blocking=True)).float().cpu()

        chunks = run_in_batches(step, int(rows.shape[0]), batch or BatchSize(CLASSIFY_BATCH), device)
        projections[m] = torch.cat(chunks) if chunks else torch.zeros(0, model.fusion.projection_dim)
    return model.taking_projections(), projections


def _on_embeddings(
    model: MultimodalClassifier,
    function: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor],
    embeddings: dict[str, torch.Tensor],
    present: torch.Tensor,
    width: int,
    batch: BatchSize | None,
) -> np.ndarray:
    """``function(embeddings chunk, present chunk)`` over the rows in batches, on the model's device."""
    device = model.device

    def step(start: int, stop: int) -> np.ndarray:
        chunk = {m: embeddings[m][start:stop].to(device, non_blocking=True) for m in model.modalities}
        with torch.inference_mode(), autocast(device):
            return function(chunk, present[start:stop]).cpu().numpy()

    chunks = run_in_batches(step, int(present.shape[0]), batch or BatchSize(CLASSIFY_BATCH), device)
    return np.concatenate(chunks) if chunks else np.zeros((0, width), dtype=np.float32)


def predict_proba(
    model: MultimodalClassifier,
    samples: Sequence[DecodedSample],
    *,
    batch: BatchSize | None = None,
    task: str | Task | None = None,
) -> np.ndarray:
    """One task's probabilities ``[N, C]`` of decoded samples: prepare, encode, fuse (default: primary task).

    Never changes the module's train/eval mode: a loaded model is shared read-only between
    threads (loading puts it in eval mode once).
    """
    return _predict_tasks(model, samples, batch, [task])[0][1]


def _predict_tasks(
    model: MultimodalClassifier, samples: Sequence[DecodedSample], batch: BatchSize | None, tasks: list
) -> list[tuple[object, np.ndarray]]:
    device = model.device

    def step(start: int, stop: int) -> np.ndarray:
        prepared = model.prepare(list(samples[start:stop]))
        with torch.inference_mode(), autocast(device):
            return model.classify(model.embed(prepared), prepared.present).float()

    chunks = run_in_batches(step, len(samples), batch or BatchSize(64), device)
    outputs = torch.cat(chunks) if chunks else torch.zeros(0, model.outputs)
    return [(task, task_output(model, outputs, task, logits=False).cpu().numpy()) for task in tasks]


@dataclass
class TaskPrediction(JsonMixin):
    """One task's prediction: single-label, the most probable class; multi-label, every label
    whose probability reaches its threshold (tuned on validation, 0.5 by default)."""

    task: str
    kind: str
    classes: list[str]
    probabilities: list[float]
    predicted: list[str]


@dataclass
class Prediction(JsonMixin):
    """One checkpoint's prediction for one sample.

    Attributes:
        checkpoint, fusion: the checkpoint's name and strategy.
        classes: the primary task's classes; ``probabilities[i]`` belongs to ``classes[i]``.
        prediction: the primary task's prediction (labels joined by ``|`` for a multi-label task).
        tasks: every task's prediction, the primary one first.
        used_modalities: the sample's modalities the checkpoint reads.
        ignored_modalities: the sample's modalities it does not use.
    """

    checkpoint: str
    fusion: str
    classes: list[str]
    probabilities: list[float]
    prediction: str
    used_modalities: list[str]
    ignored_modalities: list[str] = field(default_factory=list)
    tasks: list[TaskPrediction] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        return max(self.probabilities)

    def ranking(self) -> list[tuple[str, float]]:
        """``(class, probability)`` pairs, most probable first."""
        return sorted(zip(self.classes, self.probabilities, strict=True), key=lambda pair: -pair[1])


def predict(loaded: Any, sample: DecodedSample) -> Prediction | None:
    """The prediction of a loaded checkpoint (:class:`core.checkpoints.LoadedCheckpoint`) for one
    sample, or ``None`` when the sample has none of the modalities the checkpoint reads.

    The CLI's ``predict`` and the dashboard's Predict page both call this.
    """
    model: MultimodalClassifier = loaded.model
    present = sample.present()
    used = [m for m in present if m in model.modalities]
    if not used:
        return None
    thresholds = getattr(loaded.card, "thresholds", {}) or {}
    tasks = []
    for task, probabilities in _predict_tasks(model, [sample], None, list(model.tasks)):
        values = [float(p) for p in probabilities[0]]
        if task.multi_label:
            limits = thresholds.get(task.name, {})
            predicted = [c for c, p in zip(task.classes, values, strict=True) if p >= limits.get(c, 0.5)]
        else:
            predicted = [task.classes[int(np.argmax(values))]]
        tasks.append(TaskPrediction(task.name, task.kind, list(task.classes), values, predicted))
    primary = tasks[0]
    return Prediction(
        checkpoint=loaded.name,
        fusion=loaded.card.fusion,
        classes=primary.classes,
        probabilities=primary.probabilities,
        prediction="|".join(primary.predicted) if primary.kind == "multi" else primary.predicted[0],
        used_modalities=used,
        ignored_modalities=[m for m in present if m not in model.modalities],
        tasks=tasks,
    )
