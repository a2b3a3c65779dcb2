"""The training loss of a model with one or more tasks.

Each task's loss is computed on the rows that have a label for it (cross-entropy over its
block for a single-label task, binary cross-entropy per label for a multi-label one), and
the total is their weighted sum: fixed weights, or the homoscedastic uncertainty weighting
of Kendall, Gal and Cipolla (2018), ``sum_t exp(-s_t) L_t + s_t / 2`` with a learned
``s_t = log sigma_t^2`` per task. With one task the loss is plain cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from core.errors import TrainingError
from core.tasks import Task, output_slices

WEIGHTINGS = ("fixed", "uncertainty")

Targets = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""Task name -> (targets, known rows): ``LongTensor[B]`` or ``FloatTensor[B, C]``, and ``BoolTensor[B]``."""


class MultiTaskLoss(nn.Module):
    """Weighted sum of per-task losses on the rows labelled for each task.

    Args:
        tasks: the model's tasks, in output order.
        weighting: ``fixed`` (``weights``, default 1 each) or ``uncertainty`` (learned).
        weights: task name -> fixed weight.
        class_weights: task name -> a weight per class of a single-label task, or each label's
            ``pos_weight`` for a multi-label one (see :mod:`core.train.imbalance`).
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        weighting: str = "fixed",
        weights: dict[str, float] | None = None,
        class_weights: dict[str, torch.Tensor] | None = None,
    ):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise TrainingError(f"Unknown task weighting {weighting!r}; choose {' or '.join(WEIGHTINGS)}.")
        unknown = sorted(set(weights or {}) - {t.name for t in tasks})
        if unknown:
            raise TrainingError(f"Task weights for unknown task(s) {', '.join(unknown)}.")
        self.tasks = list(tasks)
        self.slices = output_slices(self.tasks)
        self.weighting = weighting
        self.fixed = {t.name: float((weights or {}).get(t.name, 1.0)) for t in self.tasks}
        self.log_variance = nn.Parameter(torch.zeros(len(self.tasks)), requires_grad=weighting == "uncertainty")
        self.class_weights = {k: v.float() for k, v in (class_weights or {}).items()}

    def task_losses(self, outputs: torch.Tensor, targets: Targets) -> dict[str, torch.Tensor]:
        """Each task's mean loss over its labelled rows (tasks without any such row are left out)."""
        losses = {}
        for task in self.tasks:
            y, known = targets[task.name]
            if not bool(known.any()):
                continue
            block = outputs[known][:, self.slices[task.name]].float()
            y = y[known]
            weight = self.class_weights.get(task.name)
            weight = weight.to(block.device) if weight is not None else None
            if task.multi_label:
                losses[task.name] = nn.functional.binary_cross_entropy_with_logits(block, y.float(), pos_weight=weight)
            else:
                losses[task.name] = nn.functional.cross_entropy(block, y, weight=weight)
        return losses

    def forward(self, outputs: torch.Tensor, targets: Targets) -> torch.Tensor:
        losses = self.task_losses(outputs, targets)
        total = outputs.new_zeros(())
        for i, task in enumerate(self.tasks):
            if task.name not in losses:
                continue
            if self.weighting == "uncertainty":
                s = self.log_variance[i]
                total = total + torch.exp(-s) * losses[task.name] + 0.5 * s
            else:
                total = total + self.fixed[task.name] * losses[task.name]
        return total

    def weights(self) -> dict[str, float]:
        """The weight each task's loss has now (learned ones: ``exp(-s_t)``)."""
        if self.weighting == "uncertainty":
            return {t.name: float(torch.exp(-self.log_variance[i].detach())) for i, t in enumerate(self.tasks)}
        return dict(self.fixed)
