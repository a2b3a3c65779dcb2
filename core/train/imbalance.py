"""Class imbalance: inverse-frequency class weights, a class-balanced sampler, and when to warn.

Both options are off by default (``TrainConfig.class_weights = "none"``, ``balanced_sampler =
False``). Class weights make each class count as much in the loss as if the classes were equally
frequent; the sampler draws every epoch's rows so that each class of the primary task is drawn
equally often (with replacement, seeded by the run's seed and the epoch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.errors import TrainingError
from core.tasks import Task

if TYPE_CHECKING:  # imported where used: the Overview warns about imbalance before any model is loaded
    import torch

CLASS_WEIGHTINGS = ("none", "auto")
IMBALANCE_WARNING = 5.0
"""The ratio of the largest class to the smallest above which a dataset is called imbalanced."""


def imbalance_ratio(counts: Mapping[str, int]) -> float:
    """Rows of the largest class over rows of the smallest (``inf`` when a class has none; 1 for
    fewer than two classes)."""
    values = list(counts.values())
    if len(values) < 2:
        return 1.0
    return float("inf") if min(values) == 0 else max(values) / min(values)


def inverse_frequency_weights(tasks: list[Task], targets: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per task, ``n / (C * n_c)`` for each class ``c`` of a single-label task (1 for a class with
    no training row), and ``n_negative / n_positive`` per label of a multi-label one (its
    ``pos_weight``), from the training targets ``task -> (y, known)``."""
    import torch

    out = {}
    for task in tasks:
        y, known = targets[task.name]
        y = y[known]
        if task.multi_label:
            positives = y.float().sum(dim=0)
            out[task.name] = torch.where(positives > 0, (len(y) - positives) / positives.clamp(min=1), torch.ones_like(positives))
        else:
            counts = torch.bincount(y, minlength=len(task.classes)).float()
            weights = len(y) / (len(task.classes) * counts.clamp(min=1))
            out[task.name] = torch.where(counts > 0, weights, torch.ones_like(weights))
    return out


def check_class_options(class_weights: str, balanced_sampler: bool, primary: Task) -> None:
    """Refuse an unknown weighting, or a balanced sampler over a multi-label primary task."""
    if class_weights not in CLASS_WEIGHTINGS:
        raise TrainingError(f"Unknown class weighting {class_weights!r}; choose {' or '.join(CLASS_WEIGHTINGS)}.")
    if balanced_sampler and primary.multi_label:
        raise TrainingError(
            f"--balanced-sampler balances the classes of a single-label primary task; {primary.name} is multi-label "
            "(use --class-weights auto, which weighs each label's positives)."
        )


def balanced_order(targets: tuple[torch.Tensor, torch.Tensor], seed: int, epoch: int, multiple: int = 1) -> torch.Tensor:
    """One epoch's rows drawn with replacement so that every class of the primary task
    ``(y, known)`` is drawn equally often; rows without a primary label are drawn at the
    average rate. As many rows as there are, rounded up to a ``multiple`` (the number of ranks,
    which each take every ``multiple``-th row)."""
    import torch

    y, known = targets
    n = len(y)
    weights = torch.ones(n, dtype=torch.float64)
    if bool(known.any()):
        labelled = y[known]
        counts = torch.bincount(labelled).double()
        weights[known] = 1.0 / counts[labelled]
        weights[~known] = weights[known].mean()
    total = -(-n // multiple) * multiple
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch + 7)
    return torch.multinomial(weights, total, replacement=True, generator=generator)
