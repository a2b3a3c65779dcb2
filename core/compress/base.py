"""What every compression method shares: its options, the job it works on, and a short fine-tune.

A :class:`Compressor` turns a loaded parent checkpoint into a new model; :mod:`core.compress.run`
loads the parent, scores the result and saves it as an ordinary checkpoint whose card names
its parent. Methods that train (pruning's fine-tune, distillation) do so on the embeddings of
the parent's own frozen encoders, cached in the embedding store, so they take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from core.checkpoints import LoadedCheckpoint
from core.data import Dataset
from core.embeddings import EmbeddedRecords, embed_records
from core.encoders.cache import EmbeddingCache
from core.errors import CompressionError
from core.model import MultimodalClassifier
from core.tasks import Task
from core.train.config import TrainConfig
from core.train.events import ProgressCallback
from core.train.loop import TrainingSet, fit
from core.train.loss import MultiTaskLoss, Targets


@dataclass(frozen=True)
class CompressOptions:
    """Options of the methods that take any (each method records those it used in the card).

    Attributes:
        student_hidden: distillation: the student's fusion width (default: half the teacher's).
        student_fusion: distillation: the student's strategy (default: the teacher's).
        temperature: distillation: softmax temperature of the teacher's and student's logits.
        alpha: distillation: weight of the soft (teacher) term; ``1 - alpha`` weighs the true labels.
        epochs: fine-tune epochs (default: 10 after pruning, 60 for a student).
        lr: fine-tune learning rate (default: 5e-4 after pruning, 2e-3 for a student).
        seed: seeds the student's initialisation and every epoch's batches.
        device: where training runs (default: best available; int8 always runs on the CPU).
    """

    student_hidden: int | None = None
    student_fusion: str | None = None
    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str | None = None


@dataclass
class CompressionJob:
    """A parent checkpoint being compressed, with what a method may train on.

    Attributes:
        parent: the loaded parent (read-only: methods copy its model before changing anything).
        dataset: the data the parent was trained on (``None`` when it is not available).
        parameters: the method's parameters, as validated by :meth:`Compressor.parameters`.
        options: the options given.
        device: where the parent is and training runs.
    """

    parent: LoadedCheckpoint
    dataset: Dataset | None
    parameters: dict[str, Any]
    options: CompressOptions
    device: torch.device
    cache: EmbeddingCache | None = None
    callback: ProgressCallback | None = None
    show_progress: bool = False
    label: str = "compress"
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    _embedded: dict[str, EmbeddedRecords] = field(default_factory=dict)

    def emit(self, **event: Any) -> None:
        if self.callback is not None:
            self.callback(event)

    def require_dataset(self, method: str) -> Dataset:
        if self.dataset is None:
            raise CompressionError(
                f"{method} trains on the parent's dataset, which is not available "
                f"({self.parent.card.dataset.path or 'not recorded in its card'}); pass --data."
            )
        return self.dataset

    def embedded(self, split: str) -> EmbeddedRecords:
        """The parent's embeddings of a split (computed once, kept in the embedding store)."""
        if split not in self._embedded:
            dataset = self.require_dataset("This method")
            self.emit(event="stage", stage=f"embedding the {split} split with the parent's encoders")
            records = dataset.split(split)
            self._embedded[split] = embed_records(self.parent.model, records, cache=self.cache, limits=dataset.limits)
        return self._embedded[split]

    def targets(self, split: str, tasks: list[Task]) -> Targets:
        """Each task's (targets, known rows) tensors for the rows of ``split``."""
        dataset = self.require_dataset("This method")
        records = dataset.split(split)
        out = {}
        for task in tasks:
            y, known = task.encode(dataset.targets(records, task.name))
            out[task.name] = (torch.from_numpy(y), torch.from_numpy(known))
        return out

    def fine_tune(
        self,
        model: MultimodalClassifier,
        loss: MultiTaskLoss,
        *,
        epochs: int,
        lr: float,
        extra_targets: dict[str, Targets] | None = None,
    ) -> tuple[list[dict[str, float]], int]:
        """Train ``model``'s fusion and head on the parent's cached embeddings of the training
        split, early-stopping on validation (the parent's patience, batch size, modality
        dropout and weight decay); keeps and returns (history, best epoch)."""
        sets = {}
        for split in ("train", "val"):
            data = self.embedded(split)
            targets = {**self.targets(split, model.tasks), **(extra_targets or {}).get(split, {})}
            sets[split] = TrainingSet({}, data.embeddings, data.present, targets)
        config = self.train_config()
        params = [p for n, p in model.named_parameters() if not n.startswith("encoders.")]
        for p in params:
            p.requires_grad_(True)
        self.emit(event="stage", stage=f"training {self.label}")
        self.history, self.best_epoch = fit(
            model,
            params,
            sets["train"],
            sets["val"],
            loss=loss,
            epochs=epochs,
            lr=lr,
            config=config,
            modality_dropout=config.modality_dropout if self.parent.card.kind == "fusion" else 0.0,
            device=self.device,
            label=self.label,
            show_progress=self.show_progress,
            callback=self.callback,
        )
        return self.history, self.best_epoch

    def train_config(self) -> TrainConfig:
        """The parent's training settings that a fine-tune reuses, with this job's seed."""
        recorded = self.parent.card.training.config
        default = TrainConfig()
        return TrainConfig(
            batch_size=int(recorded.get("batch_size", default.batch_size)),
            weight_decay=float(recorded.get("weight_decay", default.weight_decay)),
            patience=int(recorded.get("patience", default.patience)),
            modality_dropout=float(recorded.get("modality_dropout", default.modality_dropout)),
            seed=self.options.seed,
        )


class Compressor:
    """One compression method.

    Attributes:
        name: what ``--method`` calls it (``prune:<fraction>`` passes ``<fraction>`` as its argument).
        storage: how its checkpoints store weights (see :mod:`core.compress.storage`).

    Its one-line description (``--help``, the Train page) is in :data:`core.compress.COMPRESSION_METHODS`.
    """

    name: str = ""
    storage: str = "float32"

    def parameters(self, argument: str | None, options: CompressOptions) -> dict[str, Any]:
        """The method's parameters from its ``--method`` argument and the options (validated)."""
        if argument:
            raise CompressionError(f"The {self.name} method takes no argument (got {self.name}:{argument}).")
        return {}

    def compress(self, job: CompressionJob) -> MultimodalClassifier:
        """A new model made from ``job.parent``'s (which is left untouched)."""
        raise NotImplementedError


def copy_model(model: MultimodalClassifier) -> MultimodalClassifier:
    """A copy of a loaded model that can be changed: trainable parts copied, frozen pretrained
    encoders shared (they never change, and copying one can take gigabytes)."""
    import copy

    frozen = {m: e for m, e in model.encoders.items() if not e.trainable}
    memo = {id(e): e for e in frozen.values()}
    return copy.deepcopy(model, memo)


def weight_tensors(module: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(module, name)`` of every weight matrix (two or more dimensions) directly held by a
    submodule of ``module``: what pruning and precision changes act on."""
    return [
        (owner, name)
        for owner in module.modules()
        for name, p in owner.named_parameters(recurse=False)
        if p.dim() >= 2
    ]
