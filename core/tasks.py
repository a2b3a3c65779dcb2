"""Prediction tasks: what a model predicts, one output block per task.

A dataset's manifest names its tasks by column:

- ``label``: the primary task, single-label (one class per row);
- ``label:<task>``: another single-label task;
- ``labels:<task>``: a multi-label task, the row's labels separated by ``|`` (``-`` for a
  row labelled with none of them).

An empty cell means the row has no label for that task; it does not count in that
task's loss or metrics. A model's output is the concatenation of its tasks' logits, in
task order; single-label probabilities are a softmax over the task's block, multi-label
ones a sigmoid per label. A model trained on one task (every model of a single-label
dataset) has exactly one task, ``label``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.serialization import JsonMixin

PRIMARY = "label"
SINGLE, MULTI = "single", "multi"
NO_LABELS = "-"
"""A multi-label cell meaning: labelled, with none of the labels."""

SINGLE_TASK_SEPARATOR = "."
"""``<fusion>.<task>`` names a strategy trained on one task only, to compare with the
multi-task model of the same strategy (does sharing help or hurt?)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Target = str | tuple[str, ...] | None
"""One row's target for a task: a class (single-label), the labels (multi-label), or ``None``."""


@dataclass(frozen=True)
class Task(JsonMixin):
    """One prediction task.

    Attributes:
        name: ``label`` for the primary task, else the name after ``label:``/``labels:``.
        kind: ``single`` (one class per row, softmax) or ``multi`` (any subset, sigmoids).
        classes: the classes (single) or labels (multi), in output order.
    """

    name: str
    kind: str = SINGLE
    classes: tuple[str, ...] = ()

    @property
    def multi_label(self) -> bool:
        return self.kind == MULTI

    @property
    def column(self) -> str:
        """The manifest column holding this task's targets."""
        if self.name == PRIMARY:
            return PRIMARY
        return f"{'labels' if self.multi_label else 'label'}:{self.name}"

    def encode(self, targets: Sequence[Target]) -> tuple[np.ndarray, np.ndarray]:
        """``(y, known)``: single-label ``int64 [N]`` class indices, multi-label ``float32 [N, C]``
        multi-hot rows; ``known`` is ``bool [N]``, False where a row has no (usable) target."""
        index = {c: i for i, c in enumerate(self.classes)}
        known = np.array([t is not None for t in targets], dtype=bool)
        if not self.multi_label:
            y = np.array([index.get(t, -1) if isinstance(t, str) else -1 for t in targets], dtype=np.int64)
            return y, known & (y >= 0)
        y = np.zeros((len(targets), len(self.classes)), dtype=np.float32)
        for row, labels in enumerate(targets):
            for label in labels or ():
                if label in index:
                    y[row, index[label]] = 1.0
        return y, known

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax over the block (single-label) or a sigmoid per label (multi-label), in float64."""
        z = np.asarray(logits, dtype=np.float64)
        if self.multi_label:
            return 1.0 / (1.0 + np.exp(-z))
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def label_text(self, target: Target) -> str:
        """A target as text: the class, or the labels joined by ``|`` (``-`` for none)."""
        if target is None:
            return ""
        if isinstance(target, str):
            return target
        return "|".join(target) or NO_LABELS


def task_for_column(column: str) -> tuple[str, str] | None:
    """``(name, kind)`` of a task column (``label``, ``label:x``, ``labels:x``), ``None`` for other columns.

    Raises:
        ValueError: a ``label:``/``labels:`` column whose task name is empty or unusable.
    """
    if column == PRIMARY:
        return PRIMARY, SINGLE
    for prefix, kind in (("label:", SINGLE), ("labels:", MULTI)):
        if column.startswith(prefix):
            name = column[len(prefix) :].strip()
            if not _NAME.match(name) or name == PRIMARY:
                raise ValueError(
                    f"column {column!r}: a task name is 1-64 letters, digits, '_', '.' or '-', and not {PRIMARY!r}"
                )
            return name, kind
    return None


def parse_target(kind: str, cell: str | None) -> Target:
    """A manifest cell as a target: ``None`` when empty; multi-label cells split on ``|``."""
    if cell is None or not cell.strip():
        return None
    if kind == SINGLE:
        return cell.strip()
    if cell.strip() == NO_LABELS:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in cell.split("|") if part.strip()))


def output_slices(tasks: Sequence[Task]) -> dict[str, slice]:
    """Where each task's block lies in the concatenated output."""
    out, start = {}, 0
    for task in tasks:
        out[task.name] = slice(start, start + len(task.classes))
        start += len(task.classes)
    return out
