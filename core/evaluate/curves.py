"""Curves and calibration as data: ROC and precision-recall curves, reliability bins, ECE,
confusion matrices. Nothing here draws; :mod:`core.figures.evaluation` does."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from core.evaluate.results import Curve, Curves, Metrics, ReliabilityBins


def _normalised(proba: np.ndarray) -> np.ndarray:
    # float32 softmax rows sum to 1 only up to rounding, which sklearn warns about.
    p = np.asarray(proba, dtype=np.float64)
    return p / p.sum(axis=1, keepdims=True)


def _confidence_bins(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence: bin b holds (b/n_bins, (b+1)/n_bins]."""
    return np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)


def reliability_bins(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> ReliabilityBins:
    """Top-label confidence vs accuracy in ``n_bins`` equal-width bins."""
    proba = np.asarray(proba)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(float)
    bins = _confidence_bins(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return ReliabilityBins(
        lower=edges[:-1].tolist(),
        upper=edges[1:].tolist(),
        count=count.tolist(),
        confidence=[float(s / c) if c else None for s, c in zip(conf_sum, count, strict=True)],
        accuracy=[float(s / c) if c else None for s, c in zip(correct_sum, count, strict=True)],
    )


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """ECE: sum over bins of (bin share) x |accuracy - mean confidence| of the top label.

    scikit-learn has no ECE (``calibration_curve`` drops empty bins and their counts).
    """
    bins = reliability_bins(y_true, proba, n_bins)
    n = sum(bins.count)
    return (
        float(sum(c / n * abs(a - f) for c, a, f in zip(bins.count, bins.accuracy, bins.confidence, strict=True) if c))
        if n
        else float("nan")
    )


MAX_CURVE_POINTS = 1000
"""A drawn curve keeps at most this many of its points (evenly spaced along it, ends kept): a
chart is a few hundred pixels wide, and the micro PR curve of 15,000 rows x 20 classes had
22,000 points after sklearn dropped the intermediate ones. Areas are computed from every point."""


def _rounded(values: np.ndarray) -> list[float]:
    # Curves only feed figures: five decimals keep the JSON small without visible change.
    return np.round(np.asarray(values, dtype=float), 5).tolist()


def _curve(x: np.ndarray, y: np.ndarray, area: float | None) -> Curve:
    """A :class:`Curve` of at most :data:`MAX_CURVE_POINTS` points of ``(x, y)``."""
    if len(x) > MAX_CURVE_POINTS:
        kept = np.unique(np.linspace(0, len(x) - 1, MAX_CURVE_POINTS).round().astype(int))
        x, y = np.asarray(x)[kept], np.asarray(y)[kept]
    return Curve(_rounded(x), _rounded(y), area)


def roc_pr_curves(
    onehot: np.ndarray, p: np.ndarray, classes: Sequence[str], metrics: Metrics
) -> tuple[dict[str, Curve], dict[str, Curve]]:
    """ROC and PR curves per class (or label) present, micro and macro, from ``[N, C]`` 0/1 targets.

    The macro ROC curve averages per-class TPR on the union of their FPR points; the macro
    PR curve averages per-class interpolated precision on a 101-point recall grid. Their
    ``area`` is the macro metric (mean of per-class areas).
    """
    roc: dict[str, Curve] = {}
    pr: dict[str, Curve] = {}
    recall_grid = np.linspace(0.0, 1.0, 101)
    full_roc, full_pr = {}, {}  # every point, for the macro curves
    for c, name in enumerate(classes):
        if metrics.roc_auc_per_class.get(name) is None:
            continue
        full_roc[name] = fpr, tpr = skm.roc_curve(onehot[:, c], p[:, c])[:2]
        roc[name] = _curve(fpr, tpr, metrics.roc_auc_per_class[name])
        precision, recall, _ = skm.precision_recall_curve(onehot[:, c], p[:, c], drop_intermediate=True)
        full_pr[name] = recall, precision
        pr[name] = _curve(recall, precision, metrics.average_precision_per_class[name])
    if not roc:
        return roc, pr
    fpr, tpr, _ = skm.roc_curve(onehot.ravel(), p.ravel())
    roc["micro"] = _curve(fpr, tpr, metrics.values.get("roc_auc_micro"))
    grid = np.unique(np.concatenate([fpr for fpr, _ in full_roc.values()]))
    mean_tpr = np.mean([np.interp(grid, fpr, tpr) for fpr, tpr in full_roc.values()], axis=0)
    roc["macro"] = _curve(grid, mean_tpr, metrics.values.get("roc_auc_macro"))
    precision, recall, _ = skm.precision_recall_curve(onehot.ravel(), p.ravel(), drop_intermediate=True)
    pr["micro"] = _curve(recall, precision, metrics.values.get("average_precision_micro"))
    interpolated = []
    for rec, prec in full_pr.values():
        # Interpolated precision: the best precision at any recall >= r.
        best = np.maximum.accumulate(prec)  # recall decreases along sklearn's arrays
        interpolated.append(np.interp(recall_grid, rec[::-1], best[::-1]))
    pr["macro"] = Curve(
        _rounded(recall_grid), _rounded(np.mean(interpolated, axis=0)), metrics.values.get("average_precision_macro")
    )
    return roc, pr


def compute_curves(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str], metrics: Metrics, ece_bins: int = 15
) -> Curves:
    """ROC and PR curves (:func:`roc_pr_curves`), reliability bins and confusion matrices of a
    single-label task."""
    y = np.asarray(y_true, dtype=int)
    p = _normalised(proba)
    n_classes = len(classes)
    roc, pr = roc_pr_curves(np.eye(n_classes)[y], p, classes, metrics)
    pred = p.argmax(axis=1)
    confusion = skm.confusion_matrix(y, pred, labels=np.arange(n_classes))
    row_sums = confusion.sum(axis=1, keepdims=True)
    normalized = [
        [float(v) for v in row / total] if total else [None] * n_classes
        for row, total in zip(confusion, row_sums[:, 0], strict=True)
    ]
    return Curves(roc, pr, reliability_bins(y, p, ece_bins), confusion.tolist(), normalized)


def multilabel_curves(y: np.ndarray, proba: np.ndarray, labels: Sequence[str], metrics: Metrics, ece_bins: int = 15) -> Curves:
    """Per-label ROC and PR curves (micro, macro), and the calibration of every label's
    probability as a yes/no decision; a multi-label task has no confusion matrix."""
    truth = (np.asarray(y) > 0.5).astype(int)
    p = np.asarray(proba, dtype=np.float64)
    roc, pr = roc_pr_curves(truth, p, labels, metrics)
    flat = p.ravel()
    binary = np.stack([1.0 - flat, flat], axis=1)
    return Curves(roc, pr, reliability_bins(truth.ravel(), binary, ece_bins), [], [])
