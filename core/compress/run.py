"""Compress a checkpoint: load the parent, apply a method, score the result, save it with its provenance."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.card import CompressionInfo, DatasetInfo, TrainingInfo
from core.checkpoints import LoadedCheckpoint, load_checkpoint, save_checkpoint
from core.compress.base import CompressionJob, CompressOptions
from core.compress.registry import COMPRESSORS
from core.data import Dataset, load_dataset
from core.device import describe_device, pick_device
from core.embeddings import embed_records
from core.encoders.cache import EmbeddingCache
from core.errors import CompressionError, DatasetError
from core.evaluate.metrics import headline_metrics
from core.evaluate.multilabel import multilabel_metrics, tune_thresholds
from core.inference import classify_proba
from core.model import MultimodalClassifier
from core.serialization import JsonMixin
from core.tasks import Task
from core.train.events import ProgressCallback

MULTILABEL_HEADLINE = ("f1_micro", "f1_macro", "exact_match", "hamming_loss", "average_precision_macro")


@dataclass
class CompressResult(JsonMixin):
    """One compressed checkpoint: where it is, how it was made, and its metrics next to its parent's."""

    name: str
    path: Path
    method: str
    parameters: dict[str, Any]
    parent: str
    parent_sha256: str
    metrics: dict[str, dict[str, float]]
    parent_metrics: dict[str, dict[str, float]]
    seconds: float
    notes: list[str] = field(default_factory=list)


def parse_method(text: str) -> tuple[str, str | None]:
    """``"prune:0.5"`` -> ``("prune", "0.5")``; ``"int8"`` -> ``("int8", None)``.

    Raises:
        CompressionError: a method that is not in :data:`COMPRESSORS`.
    """
    name, _, argument = text.strip().partition(":")
    if name not in COMPRESSORS:
        raise CompressionError(
            f"Unknown compression method {text!r}; choose from "
            + ", ".join("prune:<fraction>" if n == "prune" else n for n in COMPRESSORS)
            + "."
        )
    return name, argument.strip() or None


def default_name(parent: str, method: str, options: CompressOptions | None = None) -> str:
    """A folder name for a compressed checkpoint: ``early-int8``, ``early-prune50``, ``early-distill64``."""
    name, argument = parse_method(method)
    suffix = name
    if name == "prune":
        suffix += f"{round(float(argument or 0.5) * 100)}"
    elif name == "distill" and options is not None:
        if options.student_fusion:
            suffix += f"-{options.student_fusion}"
        if options.student_hidden:
            suffix += str(options.student_hidden)
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{parent}-{suffix}")


def compress_checkpoint(
    checkpoint: str | Path,
    method: str,
    out: str | Path | None = None,
    *,
    data: str | Path | Dataset | None = None,
    options: CompressOptions | None = None,
    cache: EmbeddingCache | None = None,
    callback: ProgressCallback | None = None,
    show_progress: bool = False,
) -> CompressResult:
    """Compress the checkpoint at ``checkpoint`` with ``method`` (``int8``, ``fp16``,
    ``prune:<fraction>``, ``distill``) into the checkpoint folder ``out`` (default: a sibling
    named by :func:`default_name`).

    ``data`` is the dataset to fine-tune on and score with (default: the one the parent's card
    names). Its validation and test metrics go into the new card, as for a trained checkpoint.
    ``callback`` receives the progress events of :mod:`core.train.events`.

    Raises:
        CompressionError: an unknown method or bad parameter, an int8 parent, an ``out`` that is
            the parent itself, or a method that trains without a dataset to train on.
        CheckpointError: the parent cannot be loaded.
    """
    started = time.perf_counter()
    options = options or CompressOptions()
    name, argument = parse_method(method)
    compressor = COMPRESSORS[name]
    parameters = compressor.parameters(argument, options)
    parent_path = Path(checkpoint)
    device = pick_device("cpu" if compressor.storage == "int8" else options.device)
    parent = load_checkpoint(parent_path, device=device)
    out = Path(out) if out is not None else parent_path.parent / default_name(parent.name, method, options)
    if out.resolve() == parent_path.resolve():
        raise CompressionError(f"--out is the parent checkpoint {parent_path}; choose another folder.")
    if parent.card.compression is not None and parent.card.compression.storage == "int8":
        raise CompressionError(
            f"{parent.name} is already int8-quantised; compress its parent {parent.card.compression.parent_name} instead."
        )
    notes: list[str] = []
    dataset = _dataset(data, parent, notes)
    emit = callback or (lambda event: None)
    emit({"event": "start", "models": [out.name], "device": describe_device(device)})
    job = CompressionJob(
        parent, dataset, parameters, options, device, cache=cache, callback=callback, show_progress=show_progress, label=out.name
    )
    model = compressor.compress(job)
    emit({"event": "stage", "stage": "scoring the compressed model"})
    metrics, task_metrics, thresholds = _card_metrics(model, dataset, cache) if dataset is not None else ({}, {}, {})
    compression = CompressionInfo(
        method=name,
        parameters=job.parameters,
        storage=compressor.storage,
        parent_name=parent.name,
        parent_sha256=parent.card.sha256,
        parent_path=str(parent_path),
    )
    seconds = time.perf_counter() - started
    save_checkpoint(
        model,
        out,
        name=out.name,
        kind=parent.card.kind,
        dataset=_dataset_info(dataset) if dataset is not None else parent.card.dataset,
        training=TrainingInfo(
            config=parent.card.training.config,
            device=describe_device(device),
            epochs_run=len(job.history),
            best_epoch=job.best_epoch,
            seconds=round(seconds, 3),
            encoders_frozen_in_fusion=parent.card.training.encoders_frozen_in_fusion,
            history=job.history,
        ),
        metrics=metrics,
        preprocessing=parent.card.preprocessing,
        task_metrics=task_metrics if len(model.tasks) > 1 else None,
        thresholds=thresholds or parent.card.thresholds,
        task_weights=parent.card.task_weights or None,
        compression=compression,
    )
    emit({"event": "saved", "model": out.name, "path": str(out), "metrics": metrics})
    emit({"event": "done", "results": [{"name": out.name, "path": str(out), "metrics": metrics}]})
    return CompressResult(
        name=out.name,
        path=out,
        method=name,
        parameters=job.parameters,
        parent=parent.name,
        parent_sha256=parent.card.sha256,
        metrics=metrics,
        parent_metrics=parent.card.metrics,
        seconds=seconds,
        notes=notes,
    )


def _dataset(data: str | Path | Dataset | None, parent: LoadedCheckpoint, notes: list[str]) -> Dataset | None:
    """The dataset to fine-tune on and score with, or ``None`` (with a note) when the parent's is gone."""
    if isinstance(data, Dataset):
        dataset = data
    else:
        where = data if data is not None else parent.card.dataset.path
        if not where or (data is None and not Path(where).is_dir()):
            notes.append(f"The parent's dataset ({where or 'unrecorded'}) is not available: the card has no metrics.")
            return None
        try:
            dataset = load_dataset(where)
        except DatasetError:
            if data is not None:
                raise
            notes.append(f"The parent's dataset {where} does not load any more: the card has no metrics.")
            return None
    if parent.card.dataset.fingerprint and dataset.fingerprint != parent.card.dataset.fingerprint:
        notes.append("The dataset differs from the one the parent was trained on (its fingerprint changed).")
    return dataset


def _dataset_info(dataset: Dataset) -> DatasetInfo:
    return DatasetInfo(
        path=str(dataset.root),
        fingerprint=dataset.fingerprint,
        splits={split: len(dataset.split(split)) for split in ("train", "val", "test")},
    )


def _card_metrics(
    model: MultimodalClassifier, dataset: Dataset, cache: EmbeddingCache | None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]], dict[str, dict[str, float]]]:
    """The primary task's validation and test metrics, every task's, and multi-label thresholds
    tuned on validation: what a trained checkpoint's card holds, for the compressed model."""
    scored: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for split in ("val", "test"):
        records = dataset.split(split)
        if not records:
            continue
        data = embed_records(model, records, cache=cache, limits=dataset.limits)
        scored[split] = {}
        for task in model.tasks:
            y, known = task.encode(dataset.targets(records, task.name))
            scored[split][task.name] = (y[known], classify_proba(model, data.embeddings, data.present, task=task)[known])
    thresholds = {
        t.name: tune_thresholds(*scored["val"][t.name], t.classes) for t in model.tasks if t.multi_label and "val" in scored
    }
    task_metrics = {
        t.name: {split: _headline(t, *by_task[t.name], thresholds.get(t.name, {})) for split, by_task in scored.items()}
        for t in model.tasks
    }
    return task_metrics[model.tasks[0].name], task_metrics, thresholds


def _headline(task: Task, y: np.ndarray, proba: np.ndarray, thresholds: dict[str, float]) -> dict[str, float]:
    if not task.multi_label:
        return headline_metrics(y, proba)
    values = multilabel_metrics(y, proba, task.classes, thresholds).values
    return {"n": int(len(y)), **{k: values[k] for k in MULTILABEL_HEADLINE if values.get(k) is not None}}
