"""Metrics of multi-label tasks, through scikit-learn, and per-label decision thresholds.

A multi-label prediction keeps every label whose probability reaches its threshold; the
thresholds are tuned per label on the validation split (the one that maximises that
label's F1), stored in the checkpoint's card and used everywhere after.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from core.evaluate.results import Interval, Metrics

HEADLINE_MULTILABEL = ("f1_micro", "f1_macro", "f1_samples", "average_precision_macro", "hamming_loss", "exact_match")
"""Multi-label metrics given bootstrap intervals (mAP is ranking-based: point estimate only)."""

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def tune_thresholds(y: np.ndarray, proba: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Per label, the threshold of :data:`THRESHOLD_GRID` with the best F1 on ``(y, proba)``
    (0.5 for a label that never occurs, or where every threshold scores the same)."""
    out = {}
    for j, label in enumerate(labels):
        truth = y[:, j] > 0.5
        if not truth.any():
            out[label] = 0.5
            continue
        scores = [skm.f1_score(truth, proba[:, j] >= t, zero_division=0) for t in THRESHOLD_GRID]
        best = int(np.argmax(scores))
        out[label] = 0.5 if max(scores) == min(scores) else float(THRESHOLD_GRID[best])
    return out


def decisions(proba: np.ndarray, labels: Sequence[str], thresholds: dict[str, float]) -> np.ndarray:
    """``bool [N, L]``: which labels are predicted, each at its threshold (0.5 when not tuned)."""
    limits = np.array([thresholds.get(label, 0.5) for label in labels])
    return np.asarray(proba) >= limits[None, :]


def multilabel_metrics(
    y: np.ndarray, proba: np.ndarray, labels: Sequence[str], thresholds: dict[str, float]
) -> Metrics:
    """Micro, macro and per-sample F1, mAP (macro and micro), Hamming loss, exact-match accuracy,
    per-label ROC AUC and average precision, of multi-hot ``y`` ``[N, L]`` and probabilities."""
    y = (np.asarray(y) > 0.5).astype(int)
    predicted = decisions(proba, labels, thresholds).astype(int)
    values: dict[str, float | None] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels with no positive row: their F1 is 0 by definition here
        for average in ("micro", "macro"):
            values[f"f1_{average}"] = float(skm.f1_score(y, predicted, average=average, zero_division=0))
        # A row with no label that predicts none is right: its F1 counts as 1.
        values["f1_samples"] = float(skm.f1_score(y, predicted, average="samples", zero_division=1))
        values["precision_micro"] = float(skm.precision_score(y, predicted, average="micro", zero_division=0))
        values["recall_micro"] = float(skm.recall_score(y, predicted, average="micro", zero_division=0))
    values["hamming_loss"] = float(skm.hamming_loss(y, predicted))
    values["exact_match"] = float(skm.accuracy_score(y, predicted))
    values["accuracy"] = values["exact_match"]
    auc: dict[str, float | None] = {}
    ap: dict[str, float | None] = {}
    for j, label in enumerate(labels):
        defined = 0 < y[:, j].sum() < len(y)
        auc[label] = float(skm.roc_auc_score(y[:, j], proba[:, j])) if defined else None
        ap[label] = float(skm.average_precision_score(y[:, j], proba[:, j])) if defined else None
    defined_ap = [v for v in ap.values() if v is not None]
    defined_auc = [v for v in auc.values() if v is not None]
    values["average_precision_macro"] = float(np.mean(defined_ap)) if defined_ap else None
    values["roc_auc_macro"] = float(np.mean(defined_auc)) if defined_auc else None
    values["average_precision_micro"] = float(skm.average_precision_score(y, proba, average="micro")) if y.any() else None
    undefined = {f"roc_auc[{label}]": "the label is always or never present" for label, v in auc.items() if v is None}
    notes = [f"{len(undefined)} label(s) always or never present: their ROC AUC is undefined."] if undefined else []
    return Metrics(int(len(y)), values, auc, ap, undefined, notes)


def multilabel_intervals(
    y: np.ndarray,
    proba: np.ndarray,
    labels: Sequence[str],
    thresholds: dict[str, float],
    metrics: Metrics,
    *,
    resamples: int,
    seed: int,
) -> dict[str, Interval]:
    """Percentile 95% bootstrap intervals of the threshold-based headline metrics (vectorised)."""
    from core.evaluate.bootstrap import _interval, _resample_weights

    if resamples <= 0 or not len(y):
        return {}
    truth = np.asarray(y) > 0.5
    predicted = decisions(proba, labels, thresholds)
    w = _resample_weights(len(truth), resamples, seed)
    tp, fp, fn = w @ (truth & predicted), w @ (~truth & predicted), w @ (truth & ~predicted)
    with np.errstate(invalid="ignore", divide="ignore"):
        micro = 2 * tp.sum(1) / (2 * tp.sum(1) + fp.sum(1) + fn.sum(1))
        per_label = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        row_tp = (truth & predicted).sum(1)
        row_f1 = np.where(truth.sum(1) + predicted.sum(1) > 0, 2 * row_tp / (truth.sum(1) + predicted.sum(1)), 1.0)
    samples = {
        "f1_micro": micro,
        "f1_macro": per_label.mean(1),
        "f1_samples": w @ row_f1 / w.sum(1),
        "hamming_loss": w @ (truth != predicted).mean(1) / w.sum(1),
        "exact_match": w @ (truth == predicted).all(1) / w.sum(1),
    }
    return {name: _interval(metrics.values.get(name), values) for name, values in samples.items()}
