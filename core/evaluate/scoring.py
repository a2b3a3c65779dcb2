"""How the predictions of one task are scored: one :class:`Scorer` per task and set of rows.

A single-label task is scored with the metrics of :mod:`core.evaluate.metrics` (accuracy,
macro F1, ROC AUC, log-loss, calibration...); a multi-label one with those of
:mod:`core.evaluate.multilabel` at its tuned thresholds (micro/macro/sample F1, mAP,
Hamming loss, exact match). Evaluation, robustness and slices all go through a scorer,
so every view exists for every task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.embeddings import EmbeddedRecords
from core.evaluate.bootstrap import bootstrap_intervals
from core.evaluate.curves import compute_curves, multilabel_curves
from core.evaluate.metrics import compute_metrics, sweep_metrics
from core.evaluate.multilabel import decisions, multilabel_intervals, multilabel_metrics
from core.evaluate.results import Curves, EvaluationOptions, Interval, Metrics
from core.inference import classify_proba
from core.model import MultimodalClassifier
from core.tasks import Task

MULTILABEL_SWEEP = ("accuracy", "exact_match", "f1_micro", "f1_macro", "hamming_loss")
"""Metrics of each corruption severity for a multi-label task (``accuracy`` is exact match)."""


@dataclass
class Scorer:
    """Scores a task's probabilities on rows whose targets are ``y`` (class indices, or multi-hot rows).

    Attributes:
        thresholds: per-label decision thresholds of a multi-label task (0.5 where absent).
    """

    task: Task
    y: np.ndarray
    options: EvaluationOptions
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.task.classes)

    def probabilities(self, model: MultimodalClassifier, data: EmbeddedRecords) -> np.ndarray:
        """The task's probabilities for ``data`` (fusion + head on its embeddings)."""
        return classify_proba(model, data.embeddings, data.present, task=self.task)

    def metrics(self, proba: np.ndarray) -> Metrics:
        if self.task.multi_label:
            return multilabel_metrics(self.y, proba, self.classes, self.thresholds)
        return compute_metrics(self.y, proba, self.classes, ece_bins=self.options.ece_bins, top_k=self.options.top_k)

    def intervals(self, proba: np.ndarray, metrics: Metrics) -> dict[str, Interval]:
        o = self.options
        if self.task.multi_label:
            return multilabel_intervals(
                self.y, proba, self.classes, self.thresholds, metrics, resamples=o.bootstrap, seed=o.seed
            )
        return bootstrap_intervals(self.y, proba, metrics, resamples=o.bootstrap, seed=o.seed, ece_bins=o.ece_bins)

    def curves(self, proba: np.ndarray, metrics: Metrics) -> Curves:
        if self.task.multi_label:
            return multilabel_curves(self.y, proba, self.classes, metrics, self.options.ece_bins)
        return compute_curves(self.y, proba, self.classes, metrics, self.options.ece_bins)

    def sweep(self, proba: np.ndarray) -> dict[str, float | None]:
        """The few metrics a robustness curve shows, for one severity or subset."""
        if self.task.multi_label:
            values = multilabel_metrics(self.y, proba, self.classes, self.thresholds).values
            return {name: values[name] for name in MULTILABEL_SWEEP}
        return sweep_metrics(self.y, proba, len(self.classes), self.options.ece_bins)

    def correct(self, proba: np.ndarray) -> np.ndarray:
        """``bool [N]``: right class (single-label) or exactly the right labels (multi-label)."""
        if self.task.multi_label:
            return (decisions(proba, self.classes, self.thresholds) == (self.y > 0.5)).all(axis=1)
        return np.asarray(proba).argmax(axis=1) == self.y

    def accuracy(self, proba: np.ndarray) -> float:
        return float(self.correct(proba).mean()) if len(self.y) else float("nan")

    def truth_text(self, row: int) -> str:
        if self.task.multi_label:
            return self.task.label_text(tuple(c for c, on in zip(self.classes, self.y[row] > 0.5, strict=True) if on))
        return self.classes[int(self.y[row])]

    def prediction_text(self, proba_row: np.ndarray) -> str:
        if self.task.multi_label:
            kept = decisions(proba_row[None, :], self.classes, self.thresholds)[0]
            return self.task.label_text(tuple(c for c, on in zip(self.classes, kept, strict=True) if on))
        return self.classes[int(np.argmax(proba_row))]
