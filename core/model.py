"""MultimodalClassifier = per-modality encoders + a fusion strategy + one head block per task.

``embed`` (encoders) and ``classify`` (fusion + head) are separate so that
explanations can perturb one modality, re-run only its encoder, and reuse the
cached embeddings of the others. ``classify`` returns every task's logits concatenated
(see :mod:`core.tasks`); a single-task model has one block, its classes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.device import autocast, move_to
from core.encoders.base import Encoder
from core.fusion.base import Fusion
from core.sample import DecodedSample
from core.tasks import PRIMARY, Task, output_slices


@dataclass
class PreparedBatch:
    """Model input for B samples.

    Attributes:
        inputs: per modality, the encoder's collated input for the rows that have it.
        rows: per modality, ``LongTensor`` of the batch rows those inputs belong to.
        present: ``BoolTensor[B, M]`` in the model's sorted modality order.
    """

    inputs: dict[str, Any]
    rows: dict[str, torch.Tensor]
    present: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.present.shape[0])


class MultimodalClassifier(nn.Module):
    """Encoders + fusion + head.

    Args:
        encoders: one :class:`Encoder` per modality the model uses.
        fusion: a :class:`Fusion` built with ``in_dims`` matching the encoders' ``out_dim`` and
            ``num_classes`` equal to the total outputs of ``tasks``.
        classes: the primary task's class names (a single-task model: logit i = class i).
        tasks: every task, in output order (default: one single-label task over ``classes``).

    Attributes:
        classes: the primary task's classes; ``tasks``, ``task_slices``: every task and its
            block in ``classify``'s output.
    """

    def __init__(
        self, encoders: dict[str, Encoder], fusion: Fusion, classes: list[str], tasks: list[Task] | None = None
    ):
        super().__init__()
        self.modalities: list[str] = sorted(encoders)
        if self.modalities != fusion.modalities:
            raise ValueError(f"fusion expects {fusion.modalities}, encoders give {self.modalities}")
        self.tasks = list(tasks) if tasks else [Task(PRIMARY, classes=tuple(classes))]
        self.task_slices = output_slices(self.tasks)
        self.outputs = sum(len(t.classes) for t in self.tasks)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.classes = list(self.tasks[0].classes)
        self.head: nn.Module = nn.Identity() if fusion.outputs_logits else nn.Linear(fusion.out_dim, self.outputs)

    def task(self, name: str | None = None) -> Task:
        """The task called ``name`` (default: the primary one); ``KeyError`` for another name."""
        if name is None:
            return self.tasks[0]
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    @property
    def device(self) -> torch.device:
        return next(self.fusion.parameters()).device

    def prepare(self, samples: list[DecodedSample]) -> PreparedBatch:
        """Preprocessing of decoded samples (on the CPU, or the device for encoders with a device
        path, e.g. log-mel spectrograms on a GPU); modalities the model does not use are ignored."""
        inputs: dict[str, Any] = {}
        rows: dict[str, torch.Tensor] = {}
        present = torch.zeros(len(samples), len(self.modalities), dtype=torch.bool)
        for j, m in enumerate(self.modalities):
            idx = [i for i, s in enumerate(samples) if s.get(m) is not None]
            present[idx, j] = True
            rows[m] = torch.tensor(idx, dtype=torch.long)
            if idx:
                enc: Encoder = self.encoders[m]
                inputs[m] = enc.prepare_batch([samples[i].get(m) for i in idx], self.device)
        return PreparedBatch(inputs, rows, present)

    def embed(self, batch: PreparedBatch) -> dict[str, torch.Tensor]:
        """Run each encoder on the rows that have its modality.

        Returns ``dict[str, Tensor[B, out_dim]]``; rows of absent modalities hold zeros,
        which fusion never reads (it substitutes the learned missing embedding).
        """
        device = self.device
        out = {}
        for m in self.modalities:
            enc: Encoder = self.encoders[m]
            full = torch.zeros(batch.size, enc.out_dim, device=device)
            if m in batch.inputs and len(batch.rows[m]):
                emb = enc(move_to(batch.inputs[m], device))
                full[batch.rows[m].to(device)] = emb.to(full.dtype)
            out[m] = full
        return out

    def classify(self, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """Fusion + head on embeddings: ``Tensor[B, outputs]``, every task's logits concatenated."""
        present = present.to(self.device)
        return self.head(self.fusion({m: embeddings[m] for m in self.modalities}, present))

    def forward(self, batch: PreparedBatch) -> torch.Tensor:
        return self.classify(self.embed(batch), batch.present)

    def taking_projections(self) -> MultimodalClassifier:
        """A view of this model whose :meth:`classify` takes each modality's fusion projection in
        place of its embedding (:meth:`Fusion.taking_projections`); every weight is shared."""
        view = copy.copy(self)
        view._modules = {**self._modules, "fusion": self.fusion.taking_projections()}
        return view

    @torch.inference_mode()
    def predict_proba(self, samples: list[DecodedSample], batch_size: int = 64) -> np.ndarray:
        """Class probabilities ``[N, C]`` for decoded samples, batched, on the model's device.

        Never changes the module's train/eval mode: a loaded model is shared read-only
        between threads, so callers put it in eval mode once (loading does).
        """
        chunks = []
        for start in range(0, len(samples), batch_size):
            batch = self.prepare(samples[start : start + batch_size])
            with autocast(self.device):
                logits = self(batch)
            chunks.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes)), dtype=np.float32)

    def parameter_count(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
