"""Knowledge distillation: a smaller fusion head trained on the teacher's softened outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from core.compress.base import CompressionJob, CompressOptions, Compressor, copy_model
from core.errors import CompressionError
from core.fusion import FUSION_NAMES, build_fusion
from core.inference import classify_proba
from core.model import MultimodalClassifier
from core.tasks import Task
from core.train.loss import MultiTaskLoss, Targets

DEFAULT_EPOCHS = 60
DEFAULT_LR = 2e-3
TEACHER = "__teacher__"
"""The key under which the teacher's logits travel with the targets of each batch."""


class DistillationLoss(MultiTaskLoss):
    """Hinton et al. (2015): per task, ``alpha * T^2 * KL(teacher_T || student_T)`` plus
    ``(1 - alpha)`` times the usual loss on the true labels, summed over tasks with the teacher's
    task weights. ``_T`` is a softmax at temperature ``T`` (a sigmoid per label for a
    multi-label task, whose soft term is then a binary cross-entropy against the teacher's
    probabilities). Validation, and so early stopping, uses the true labels alone.

    Inputs of ``forward``: the student's logits ``[B, outputs]`` and the targets, holding the
    teacher's logits under :data:`TEACHER`.
    """

    def __init__(self, tasks: Sequence[Task], weights: dict[str, float] | None, temperature: float, alpha: float):
        super().__init__(tasks, "fixed", weights)
        self.temperature = temperature
        self.alpha = alpha

    def forward(self, outputs: torch.Tensor, targets: Targets) -> torch.Tensor:
        teacher, _ = targets[TEACHER]
        hard = super().forward(outputs, {k: v for k, v in targets.items() if k != TEACHER})
        t = self.temperature
        soft = outputs.new_zeros(())
        for task in self.tasks:
            block = self.slices[task.name]
            student, target = outputs[:, block].float() / t, teacher[:, block].float() / t
            if task.multi_label:
                term = nn.functional.binary_cross_entropy_with_logits(student, torch.sigmoid(target))
            else:
                term = nn.functional.kl_div(
                    torch.log_softmax(student, dim=-1), torch.log_softmax(target, dim=-1), log_target=True, reduction="batchmean"
                )
            soft = soft + self.fixed[task.name] * term
        return self.alpha * t * t * soft + (1.0 - self.alpha) * hard


class Distill(Compressor):
    """A student fusion (the teacher's strategy or another, ``--student-fusion``) of width
    ``--student-hidden`` (default half the teacher's) over the teacher's own encoders, trained
    from scratch on the cached embeddings to match the teacher's softened outputs
    (``--temperature``) mixed with the true labels (``--alpha``: the teacher's share)."""

    name = "distill"

    def parameters(self, argument: str | None, options: CompressOptions) -> dict[str, Any]:
        super().parameters(argument, options)
        if options.student_fusion is not None and options.student_fusion not in FUSION_NAMES:
            raise CompressionError(f"Unknown student fusion {options.student_fusion!r}; choose from {', '.join(FUSION_NAMES)}.")
        if options.student_hidden is not None and options.student_hidden < 2:
            raise CompressionError(f"--student-hidden must be at least 2, got {options.student_hidden}.")
        if options.temperature <= 0:
            raise CompressionError(f"--temperature must be positive, got {options.temperature}.")
        if not 0.0 <= options.alpha <= 1.0:
            raise CompressionError(f"--alpha (the teacher's share of the loss) must be in [0, 1], got {options.alpha}.")
        return {
            "student_fusion": options.student_fusion,
            "student_hidden": options.student_hidden,
            "temperature": float(options.temperature),
            "alpha": float(options.alpha),
            "epochs": int(options.epochs if options.epochs is not None else DEFAULT_EPOCHS),
            "lr": float(options.lr if options.lr is not None else DEFAULT_LR),
            "seed": options.seed,
        }

    def compress(self, job: CompressionJob) -> MultimodalClassifier:
        params = job.parameters
        teacher = job.parent.model
        params["student_fusion"] = params["student_fusion"] or teacher.fusion.name
        params["student_hidden"] = params["student_hidden"] or max(2, teacher.fusion.hidden // 2)
        base = copy_model(teacher)
        torch.manual_seed(params["seed"])
        fusion = build_fusion(
            params["student_fusion"],
            in_dims=dict(teacher.fusion.in_dims),
            num_classes=teacher.outputs,
            hidden=params["student_hidden"],
            dropout=teacher.fusion.dropout,
        )
        student = MultimodalClassifier(dict(base.encoders.items()), fusion, list(teacher.classes), list(teacher.tasks))
        student = student.to(job.device)
        student.encoders.requires_grad_(False)
        job.emit(event="stage", stage="computing the teacher's outputs")
        soft = {split: {TEACHER: self._teacher_logits(job, split)} for split in ("train", "val")}
        loss = DistillationLoss(student.tasks, job.parent.card.task_weights or None, params["temperature"], params["alpha"])
        job.fine_tune(student, loss, epochs=params["epochs"], lr=params["lr"], extra_targets=soft)
        student.requires_grad_(False)
        return student.eval()

    @staticmethod
    def _teacher_logits(job: CompressionJob, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        data = job.embedded(split)
        teacher = job.parent.model
        logits = np.concatenate(
            [classify_proba(teacher, data.embeddings, data.present, logits=True, task=t) for t in teacher.tasks], axis=1
        )
        return torch.from_numpy(logits), torch.ones(len(data), dtype=torch.bool)
