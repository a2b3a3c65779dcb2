"""Evaluation and comparison of checkpoints: metrics, curves, calibration, robustness, cost.

Everything here returns plain dataclasses that round-trip through JSON
(``to_json()`` / ``from_json()``) and hold no tensors; :mod:`core.figures.evaluation`
draws them and :mod:`core.report` writes them into one HTML file.

The expensive part, encoding the inputs, happens once: clean embeddings come from the
on-disk embedding cache, and robustness analyses run ``model.classify`` on them with
the presence mask changed (missing modalities), one modality's rows shuffled
(reliance), or one modality re-encoded from corrupted inputs (corruption sweeps).
Corrupted embeddings are shared between checkpoints whose encoder has the same
``cache_id`` (the demo's six fusions share their encoders), so a sweep over six
strategies encodes each corrupted input once.

Example
-------
>>> report = evaluate(["checkpoints/early", "checkpoints/late"], "demo_data")  # doctest: +SKIP
>>> report.checkpoints[0].metrics.values["accuracy"]  # doctest: +SKIP
0.93
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
import math
import os
import platform
import resource
import sys
import time
import types
import typing
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from scipy import stats
from sklearn import metrics as skm

from core.atomic import write_text_atomic
from core.checkpoints import LoadedCheckpoint, load_checkpoint, read_card
from core.data import Dataset, Record, load_dataset, load_sample
from core.device import autocast, describe_device, pick_device
from core.embeddings import EmbeddedRecords, classify_embedded, embed_records
from core.encoders import encode_values
from core.encoders.base import Encoder
from core.encoders.cache import EmbeddingCache
from core.sample import DecodedSample

EVALUATION_VERSION = 1
"""Part of every evaluation-cache key: bump when a computation here changes."""

HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_macro", "log_loss", "brier", "ece")
"""Metrics given bootstrap confidence intervals."""

SWEEP_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "ece")
"""Metrics of each corruption severity."""

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})


class EvaluationError(ValueError):
    """An evaluation that cannot be done as asked; ``str(err)`` says why in user terms."""


# --------------------------------------------------------------------------- JSON plumbing


def _to_plain(value: Any) -> Any:
    """Dataclasses, numpy scalars and non-finite floats -> JSON-safe values (NaN/inf -> None)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _from_plain(annotation: Any, data: Any) -> Any:
    """Rebuild a value of type ``annotation`` (dataclass, list, dict, tuple, optional) from JSON."""
    if data is None:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _from_plain(inner[0], data) if len(inner) == 1 else data
    if is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        return annotation(
            **{f.name: _from_plain(hints[f.name], data[f.name]) for f in fields(annotation) if f.name in data}
        )
    if origin is list:
        return [_from_plain(args[0], v) for v in data]
    if origin is tuple:
        return tuple(_from_plain(args[0], v) for v in data)
    if origin is dict:
        return {k: _from_plain(args[1], v) for k, v in data.items()}
    return data


class _JsonMixin:
    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``json.dumps`` it as is); undefined numbers are ``None``."""
        return _to_plain(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str):
        """Inverse of :meth:`to_json`; also accepts the JSON text."""
        return _from_plain(cls, json.loads(data) if isinstance(data, str) else data)


# --------------------------------------------------------------------------- result objects


@dataclass(frozen=True)
class EvaluationOptions(_JsonMixin):
    """What an evaluation computes; part of the evaluation-cache key.

    Attributes:
        bootstrap: resamples for confidence intervals (0 disables them).
        seed: seeds bootstrap, corruptions and permutations.
        robustness: compute the missing-modality table, corruption sweeps and reliance.
        reliance_repeats: permutations per modality.
        ece_bins: equal-width confidence bins of ECE and the reliability diagram.
        top_k: k values of top-k accuracy (only those below the number of classes are reported).
        corruptions: names of the :data:`CORRUPTIONS` to sweep.
        cost: measure latency, throughput and peak memory.
        large_batch: batch size of the throughput and peak-memory measurements.
    """

    bootstrap: int = 1000
    seed: int = 0
    robustness: bool = True
    reliance_repeats: int = 5
    ece_bins: int = 15
    top_k: tuple[int, ...] = (2, 3)
    corruptions: tuple[str, ...] = ("image_noise", "image_occlusion", "audio_noise", "text_dropout")
    cost: bool = True
    large_batch: int = 64

    def key(self) -> str:
        """Hash of the options and :data:`EVALUATION_VERSION`."""
        text = json.dumps({"version": EVALUATION_VERSION, **self.to_json()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Metrics(_JsonMixin):
    """Scalar metrics of one set of predictions.

    Attributes:
        n: rows scored.
        values: ``accuracy``, ``balanced_accuracy``, ``precision_macro``, ``recall_macro``,
            ``f1_macro``, ``precision_weighted``, ``recall_weighted``, ``f1_weighted``,
            ``log_loss``, ``top_<k>_accuracy``, ``roc_auc`` (binary: of the second class;
            multiclass: = ``roc_auc_macro``), ``roc_auc_macro``, ``roc_auc_micro``,
            ``average_precision_macro``, ``average_precision_micro``, ``brier``, ``ece``.
            ``None`` where undefined (see ``undefined``).
        roc_auc_per_class, average_precision_per_class: one-vs-rest, ``None`` for a class
            absent from the split.
        undefined: metric name -> why it is ``None``.
        notes: human remarks (absent classes, single-class split).
    """

    n: int
    values: dict[str, float | None]
    roc_auc_per_class: dict[str, float | None]
    average_precision_per_class: dict[str, float | None]
    undefined: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Interval(_JsonMixin):
    """Point estimate and percentile bootstrap 95% interval (``None`` when undefined)."""

    point: float | None
    low: float | None
    high: float | None


@dataclass
class Curve(_JsonMixin):
    """One ROC (x = FPR, y = TPR) or PR (x = recall, y = precision) curve and its area."""

    x: list[float]
    y: list[float]
    area: float | None


@dataclass
class ReliabilityBins(_JsonMixin):
    """Equal-width confidence bins: mean confidence and accuracy (``None`` in empty bins)."""

    lower: list[float]
    upper: list[float]
    count: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]


@dataclass
class Curves(_JsonMixin):
    """Curves as data. ``roc`` and ``pr`` are keyed by class name, ``"micro"`` and ``"macro"``;
    classes absent from the split have no curve. Confusion rows are true classes, columns
    predictions; ``confusion_normalized`` rows sum to 1 (``None`` for absent classes)."""

    roc: dict[str, Curve]
    pr: dict[str, Curve]
    reliability: ReliabilityBins
    confusion: list[list[int]]
    confusion_normalized: list[list[float | None]]


@dataclass
class SampleResult(_JsonMixin):
    """One scored row: the dashboard lists misclassified and disputed samples from these."""

    id: str
    label: str
    prediction: str
    probabilities: list[float]
    correct: bool
    present: list[str]
    extras: dict[str, str]


@dataclass
class SubsetResult(_JsonMixin):
    """Metrics when only ``modalities`` are kept (the others marked absent)."""

    modalities: list[str]
    values: dict[str, float | None]


@dataclass
class CorruptionSweep(_JsonMixin):
    """Metric-vs-severity of one corruption; index 0 is the clean input.

    Attributes:
        name, modality, description: e.g. ``image_noise``, ``image``, ``Gaussian noise``.
        parameter: what ``levels`` measure, e.g. ``noise std (fraction of range)``.
        levels: the parameter at each severity (``None`` = clean).
        level_labels: short tick labels.
        values: per severity, :data:`SWEEP_METRICS` (no ranking metrics: a sweep holds many
            points and these are what the curves show).
        n_corrupted: rows that have the modality (the others are unaffected).
    """

    name: str
    modality: str
    description: str
    parameter: str
    levels: list[float | None]
    level_labels: list[str]
    values: list[dict[str, float | None]]
    n_corrupted: int


@dataclass
class RelianceScore(_JsonMixin):
    """Accuracy drop when one modality's embeddings and presence are shuffled across rows."""

    modality: str
    mean_drop: float
    std_drop: float
    drops: list[float]


@dataclass
class Cost(_JsonMixin):
    """Size and speed on ``device``.

    Latencies are medians over single-sample calls; throughputs are samples per second
    at ``large_batch``. ``end_to_end`` starts from decoded samples (preprocessing +
    encoders + fusion + head); ``fusion`` starts from embeddings. ``peak_memory_mb`` is
    measured during the end-to-end large-batch pass; ``peak_memory_method`` says how.
    """

    device: str
    parameters: int
    fusion_parameters: int
    large_batch: int
    latency_ms_end_to_end: float
    throughput_end_to_end: float
    latency_ms_fusion: float
    throughput_fusion: float
    peak_memory_mb: float | None
    peak_memory_method: str


@dataclass
class CheckpointEvaluation(_JsonMixin):
    """Everything measured for one checkpoint on one dataset split."""

    name: str
    path: str
    sha256: str
    fusion: str
    kind: str
    modalities: list[str]
    classes: list[str]
    dataset: str
    dataset_fingerprint: str
    split: str
    n_rows: int
    n_excluded: int
    excluded_labels: dict[str, int]
    metrics: Metrics
    intervals: dict[str, Interval]
    curves: Curves
    samples: list[SampleResult]
    missing_modality: list[SubsetResult]
    corruptions: list[CorruptionSweep]
    reliance: list[RelianceScore]
    cost: Cost | None
    options: EvaluationOptions
    notes: list[str]
    seconds: float


@dataclass
class PairedTest(_JsonMixin):
    """Paired comparison of checkpoints ``a`` and ``b`` on the rows both scored.

    ``only_a_correct`` and ``only_b_correct`` are McNemar's discordant counts; the exact
    p-value is a two-sided binomial test of them, the chi-squared one uses the continuity
    correction. ``difference`` is accuracy(a) - accuracy(b) with a paired bootstrap interval;
    ``bootstrap_p`` is the two-sided share of resamples on the other side of zero.
    """

    a: str
    b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    difference: Interval
    both_correct: int
    only_a_correct: int
    only_b_correct: int
    both_wrong: int
    mcnemar_exact_p: float
    mcnemar_chi2: float | None
    mcnemar_chi2_p: float
    bootstrap_p: float | None


@dataclass
class EvaluationReport(_JsonMixin):
    """Several checkpoints evaluated on the same split, with pairwise tests."""

    dataset: str
    dataset_fingerprint: str
    split: str
    created_at: str
    device: str
    versions: dict[str, str]
    checkpoints: list[CheckpointEvaluation]
    pairwise: list[PairedTest]
    seconds: float

    def by_name(self, name: str) -> CheckpointEvaluation:
        for result in self.checkpoints:
            if result.name == name:
                return result
        raise KeyError(name)


# --------------------------------------------------------------------------- metrics


def headline_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1 and log-loss of probabilities ``[N, C]``.

    Rows whose label is unknown to the model (``y_true < 0``) are left out.
    """
    y_true = np.asarray(y_true)
    keep = y_true >= 0
    y, p = y_true[keep], np.asarray(proba)[keep]
    if len(y) == 0:
        return {"n": 0}
    pred = p.argmax(axis=1)
    labels = np.arange(p.shape[1])
    return {
        "n": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "macro_f1": float(skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1.0), labels=labels)),
    }


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


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        # Predicting a class absent from the split is normal here, not worth a warning.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return skm.balanced_accuracy_score(y, pred)


def compute_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str], *, ece_bins: int = 15, top_k: Sequence[int] = (2, 3)
) -> Metrics:
    """Every scalar metric of probabilities ``[N, C]`` against class indices ``y_true``.

    Metrics that a split cannot define are ``None`` with the reason in ``undefined``:
    ROC AUC and average precision of a class absent from the split, and every ranking
    metric of a single-class split (accuracy is still reported).

    Raises:
        EvaluationError: no rows.
    """
    y = np.asarray(y_true, dtype=int)
    p = _normalised(proba)
    n_classes = len(classes)
    if len(y) == 0:
        raise EvaluationError("There are no rows to score.")
    pred = p.argmax(axis=1)
    labels = np.arange(n_classes)
    onehot = np.eye(n_classes)[y]
    values: dict[str, float | None] = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": _balanced_accuracy(y, pred) if len(np.unique(y)) > 1 else None,
        "log_loss": skm.log_loss(y, p, labels=labels),
    }
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = skm.precision_recall_fscore_support(y, pred, average=average, zero_division=0)
        values |= {f"precision_{average}": precision, f"recall_{average}": recall, f"f1_{average}": f1}
    for k in top_k:
        if k < n_classes:
            values[f"top_{k}_accuracy"] = skm.top_k_accuracy_score(y, p, k=k, labels=labels)
    values["brier"] = (
        skm.brier_score_loss(y, p[:, 1], pos_label=1) if n_classes == 2 else skm.brier_score_loss(y, p, labels=labels)
    )
    values["ece"] = expected_calibration_error(y, p, ece_bins)

    undefined: dict[str, str] = {}
    notes: list[str] = []
    auc: dict[str, float | None] = {}
    ap: dict[str, float | None] = {}
    absent = [classes[c] for c in labels if not onehot[:, c].any()]
    for c in labels:
        column = onehot[:, c]
        if column.any() and not column.all():
            auc[classes[c]] = float(skm.roc_auc_score(column, p[:, c]))
            ap[classes[c]] = float(skm.average_precision_score(column, p[:, c]))
        else:
            auc[classes[c]] = ap[classes[c]] = None
    present_classes = [c for c in labels if onehot[:, c].any()]
    if len(present_classes) < 2:
        only = classes[present_classes[0]]
        reason = (
            f"Every scored row has label {only!r}: ROC AUC, average precision and balanced accuracy need "
            "at least two classes in the split (accuracy is still reported)."
        )
        notes.append(reason)
        undefined["balanced_accuracy"] = reason
        for name in ("roc_auc", "roc_auc_macro", "roc_auc_micro", "average_precision_macro", "average_precision_micro"):
            values[name] = None
            undefined[name] = reason
    else:
        if absent:
            notes.append(
                f"{len(absent)} class(es) absent from the split ({', '.join(absent[:10])}"
                f"{', ...' if len(absent) > 10 else ''}): their ROC AUC and average precision are undefined "
                "and macro averages are over the classes present."
            )
        defined_auc = [v for v in auc.values() if v is not None]
        values["roc_auc_macro"] = float(np.mean(defined_auc))
        values["roc_auc_micro"] = skm.roc_auc_score(onehot.ravel(), p.ravel())
        values["roc_auc"] = skm.roc_auc_score(y, p[:, 1]) if n_classes == 2 else values["roc_auc_macro"]
        values["average_precision_macro"] = float(np.mean([v for v in ap.values() if v is not None]))
        values["average_precision_micro"] = skm.average_precision_score(onehot.ravel(), p.ravel())
    for name in absent:
        undefined[f"roc_auc[{name}]"] = f"class {name!r} does not occur in the split"
    return Metrics(
        n=int(len(y)),
        values={k: (None if v is None else float(v)) for k, v in values.items()},
        roc_auc_per_class=auc,
        average_precision_per_class=ap,
        undefined=undefined,
        notes=notes,
    )


def _rounded(values: np.ndarray) -> list[float]:
    # Curves only feed figures: five decimals keep the JSON small without visible change.
    return np.round(np.asarray(values, dtype=float), 5).tolist()


def compute_curves(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str], metrics: Metrics, ece_bins: int = 15
) -> Curves:
    """ROC and PR curves per class present, micro and macro; reliability bins; confusion matrices.

    The macro ROC curve averages per-class TPR on the union of their FPR points; the macro
    PR curve averages per-class interpolated precision on a 101-point recall grid. Their
    ``area`` is the macro metric (mean of per-class areas).
    """
    y = np.asarray(y_true, dtype=int)
    p = _normalised(proba)
    n_classes = len(classes)
    onehot = np.eye(n_classes)[y]
    roc: dict[str, Curve] = {}
    pr: dict[str, Curve] = {}
    recall_grid = np.linspace(0.0, 1.0, 101)
    for c, name in enumerate(classes):
        if metrics.roc_auc_per_class.get(name) is None:
            continue
        fpr, tpr, _ = skm.roc_curve(onehot[:, c], p[:, c])
        roc[name] = Curve(_rounded(fpr), _rounded(tpr), metrics.roc_auc_per_class[name])
        precision, recall, _ = skm.precision_recall_curve(onehot[:, c], p[:, c])
        pr[name] = Curve(_rounded(recall), _rounded(precision), metrics.average_precision_per_class[name])
    if roc:
        fpr, tpr, _ = skm.roc_curve(onehot.ravel(), p.ravel())
        roc["micro"] = Curve(_rounded(fpr), _rounded(tpr), metrics.values.get("roc_auc_micro"))
        per_class = [roc[name] for name in classes if name in roc]
        grid = np.unique(np.concatenate([c.x for c in per_class]))
        mean_tpr = np.mean([np.interp(grid, c.x, c.y) for c in per_class], axis=0)
        roc["macro"] = Curve(_rounded(grid), _rounded(mean_tpr), metrics.values.get("roc_auc_macro"))
        precision, recall, _ = skm.precision_recall_curve(onehot.ravel(), p.ravel())
        pr["micro"] = Curve(_rounded(recall), _rounded(precision), metrics.values.get("average_precision_micro"))
        interpolated = []
        for name in classes:
            if name in pr:
                rec, prec = np.asarray(pr[name].x), np.asarray(pr[name].y)
                # Interpolated precision: the best precision at any recall >= r.
                best = np.maximum.accumulate(prec)  # recall decreases along sklearn's arrays
                interpolated.append(np.interp(recall_grid, rec[::-1], best[::-1]))
        pr["macro"] = Curve(
            _rounded(recall_grid),
            _rounded(np.mean(interpolated, axis=0)),
            metrics.values.get("average_precision_macro"),
        )
    pred = p.argmax(axis=1)
    confusion = skm.confusion_matrix(y, pred, labels=np.arange(n_classes))
    row_sums = confusion.sum(axis=1, keepdims=True)
    normalized = [
        [float(v) for v in row / total] if total else [None] * n_classes
        for row, total in zip(confusion, row_sums[:, 0], strict=True)
    ]
    return Curves(roc, pr, reliability_bins(y, p, ece_bins), confusion.tolist(), normalized)


# --------------------------------------------------------------------------- bootstrap


def _resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` multiplicities of each row in each bootstrap resample.

    Every bootstrap statistic below is a weighted sum over rows, so one matrix product
    evaluates it on all resamples at once.
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def _weighted_auc(weights: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC (Mann-Whitney, ties count half) for every resample; NaN where undefined."""
    order = np.argsort(score, kind="stable")
    sorted_score, pos = score[order], positive[order]
    w = weights[:, order]
    _, group_start, group_size = np.unique(sorted_score, return_index=True, return_counts=True)
    group_of = np.repeat(np.arange(len(group_start)), group_size)
    neg_cum = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w * ~pos, axis=1)], axis=1)
    below = neg_cum[:, group_start[group_of]]
    tied = neg_cum[:, (group_start + group_size)[group_of]] - below
    wins = ((below + 0.5 * tied) * w)[:, pos].sum(axis=1)
    pairs = w[:, pos].sum(axis=1) * w[:, ~pos].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)


def _interval(point: float | None, samples: np.ndarray) -> Interval:
    finite = samples[np.isfinite(samples)]
    if point is None or len(finite) == 0:
        return Interval(point, None, None)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(point, float(low), float(high))


def bootstrap_intervals(
    y_true: np.ndarray, proba: np.ndarray, metrics: Metrics, *, resamples: int = 1000, seed: int = 0, ece_bins: int = 15
) -> dict[str, Interval]:
    """Percentile 95% intervals of :data:`HEADLINE_METRICS`, vectorised over resamples.

    Each statistic uses the same definition as :func:`compute_metrics` (macro F1 over the
    classes in truth or prediction, balanced accuracy and macro AUC over the classes present).
    """
    y = np.asarray(y_true, dtype=int)
    p = _normalised(proba)
    n, n_classes = p.shape
    if resamples <= 0:
        return {}
    w = _resample_weights(n, resamples, seed)
    total = w.sum(axis=1)
    pred = p.argmax(axis=1)
    correct = (pred == y).astype(float)
    true_onehot = np.eye(n_classes)[y]
    pred_onehot = np.eye(n_classes)[pred]
    true_count = w @ true_onehot
    pred_count = w @ pred_onehot
    hits = w @ (true_onehot * correct[:, None])
    eps = np.finfo(np.float64).eps
    nll = -np.log(np.clip(p[np.arange(n), y], eps, 1 - eps))
    squared = (p[:, 1] - y) ** 2 if n_classes == 2 else ((p - true_onehot) ** 2).sum(axis=1)
    confidence = p.max(axis=1)
    bin_onehot = np.eye(ece_bins)[_confidence_bins(confidence, ece_bins)]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(true_count > 0, hits / np.where(true_count > 0, true_count, 1), np.nan)
        f1 = np.where(true_count + pred_count > 0, 2 * hits / (true_count + pred_count), np.nan)
        samples = {
            "accuracy": w @ correct / total,
            "balanced_accuracy": np.nanmean(recall, axis=1),
            "f1_macro": np.nanmean(f1, axis=1),
            "log_loss": w @ nll / total,
            "brier": w @ squared / total,
            "ece": np.abs(w @ (bin_onehot * (correct - confidence)[:, None])).sum(axis=1) / total,
        }
        if metrics.values.get("roc_auc_macro") is not None:
            aucs = np.stack([_weighted_auc(w, y == c, p[:, c]) for c in range(n_classes) if (y == c).any()], axis=1)
            samples["roc_auc_macro"] = np.nanmean(aucs, axis=1)
    return {name: _interval(metrics.values.get(name), samples[name]) for name in HEADLINE_METRICS if name in samples}


def paired_test(
    a: CheckpointEvaluation, b: CheckpointEvaluation, *, resamples: int = 1000, seed: int = 0
) -> PairedTest:
    """McNemar's test (exact binomial and continuity-corrected chi-squared) and a paired
    bootstrap of the accuracy difference, on the rows both checkpoints scored.

    Raises:
        EvaluationError: the two results share no scored row.
    """
    correct_b = {s.id: s.correct for s in b.samples}
    pairs = [(s.correct, correct_b[s.id]) for s in a.samples if s.id in correct_b]
    if not pairs:
        raise EvaluationError(
            f"{a.name} and {b.name} have no scored row in common; were they evaluated on the same split?"
        )
    ca, cb = (np.array(x, dtype=float) for x in zip(*pairs, strict=True))
    only_a = int(((ca == 1) & (cb == 0)).sum())
    only_b = int(((ca == 0) & (cb == 1)).sum())
    discordant = only_a + only_b
    exact_p = stats.binomtest(only_a, discordant, 0.5).pvalue if discordant else 1.0
    chi2 = (abs(only_a - only_b) - 1) ** 2 / discordant if discordant else None
    chi2_p = float(stats.chi2.sf(chi2, df=1)) if chi2 is not None else 1.0
    diff = ca - cb
    point = float(diff.mean())
    bootstrap_p = None
    interval = Interval(point, None, None)
    if resamples > 0:
        w = _resample_weights(len(diff), resamples, seed)
        diffs = w @ diff / w.sum(axis=1)
        interval = _interval(point, diffs)
        bootstrap_p = float(min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    return PairedTest(
        a=a.name,
        b=b.name,
        n=len(diff),
        accuracy_a=float(ca.mean()),
        accuracy_b=float(cb.mean()),
        difference=interval,
        both_correct=int(((ca == 1) & (cb == 1)).sum()),
        only_a_correct=only_a,
        only_b_correct=only_b,
        both_wrong=int(((ca == 0) & (cb == 0)).sum()),
        mcnemar_exact_p=float(exact_p),
        mcnemar_chi2=chi2,
        mcnemar_chi2_p=chi2_p,
        bootstrap_p=bootstrap_p,
    )


def disagreements(results: EvaluationReport | Sequence[CheckpointEvaluation]) -> list[dict[str, Any]]:
    """Rows that the checkpoints predict differently, in the first result's order.

    Each item: ``{"id", "label", "predictions": {name: class}, "correct": {name: bool}, "extras"}``.
    """
    results = results.checkpoints if isinstance(results, EvaluationReport) else list(results)
    by_id = [{s.id: s for s in r.samples} for r in results]
    out = []
    for sample in results[0].samples if results else []:
        rows = {r.name: lookup[sample.id] for r, lookup in zip(results, by_id, strict=True) if sample.id in lookup}
        if len({row.prediction for row in rows.values()}) > 1:
            out.append(
                {
                    "id": sample.id,
                    "label": sample.label,
                    "predictions": {name: row.prediction for name, row in rows.items()},
                    "correct": {name: row.correct for name, row in rows.items()},
                    "extras": sample.extras,
                }
            )
    return out


# --------------------------------------------------------------------------- corruptions


def _gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma * 255.0, size=image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _occlusion(image: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    # A mid-grey square at a random place: neither ink nor background of typical images.
    h, w = image.shape[:2]
    side_h, side_w = max(1, round(h * math.sqrt(area))), max(1, round(w * math.sqrt(area)))
    top, left = rng.integers(0, h - side_h + 1), rng.integers(0, w - side_w + 1)
    out = image.copy()
    out[top : top + side_h, left : left + side_w] = 128
    return out


def _audio_noise(waveform: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(waveform.astype(np.float64) ** 2))
    if power == 0.0:
        return waveform  # digital silence has no SNR to lower
    noise = rng.normal(0.0, math.sqrt(power / 10 ** (snr_db / 10)), size=waveform.shape)
    return (waveform + noise).astype(np.float32)


def _token_dropout(text: str, rate: float, rng: np.random.Generator) -> str:
    tokens = text.split()
    return " ".join(t for t in tokens if rng.random() >= rate)


@dataclass(frozen=True)
class Corruption:
    """A seeded corruption of one modality's decoded value, at increasing severities."""

    name: str
    modality: str
    description: str
    parameter: str
    levels: tuple[float | None, ...]
    level_labels: tuple[str, ...]
    apply: Callable[[Any, float, np.random.Generator], Any]


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("image_noise", "image", "Image: Gaussian noise", "noise std (fraction of 255)",
                   (None, 0.05, 0.1, 0.2, 0.35, 0.5), ("clean", "0.05", "0.1", "0.2", "0.35", "0.5"), _gaussian_noise),
        Corruption("image_occlusion", "image", "Image: occlusion", "occluded area fraction",
                   (None, 0.1, 0.2, 0.3, 0.45, 0.6), ("clean", "10%", "20%", "30%", "45%", "60%"), _occlusion),
        Corruption("audio_noise", "audio", "Audio: white noise", "SNR (dB)",
                   (None, 20.0, 10.0, 5.0, 0.0, -5.0), ("clean", "20 dB", "10 dB", "5 dB", "0 dB", "-5 dB"), _audio_noise),
        Corruption("text_dropout", "text", "Text: word dropout", "share of words dropped",
                   (None, 0.1, 0.25, 0.5, 0.75, 0.9), ("clean", "10%", "25%", "50%", "75%", "90%"), _token_dropout),
    )
}  # fmt: skip
"""Every sweep; severity 0 is always the clean input."""


class SplitInputs:
    """The records of one split, their decoded samples (decoded once, on first use) and the
    embeddings of corrupted inputs, shared by every checkpoint evaluated on the split.

    Corrupted embeddings are memoised in memory by (encoder cache id, corruption,
    severity, sample content hash, seed).
    """

    def __init__(self, dataset: Dataset, split: str):
        self.dataset = dataset
        self.split = split
        self.records: list[Record] = dataset.split(split)
        self._decoded: list[DecodedSample] | None = None
        self._corrupted: dict[tuple[str, str, int, str, int], np.ndarray] = {}

    @property
    def decoded(self) -> list[DecodedSample]:
        if self._decoded is None:
            self._decoded = [load_sample(r, self.dataset.limits) for r in self.records]
        return self._decoded

    def corrupted_embeddings(
        self, encoder: Encoder, corruption: Corruption, severity: int, rows: list[int], seed: int, device: torch.device
    ) -> torch.Tensor:
        """``Tensor[len(rows), out_dim]``: embeddings of the corrupted ``corruption.modality`` of ``rows``."""
        cache_id = encoder.cache_id()
        modality = corruption.modality
        keys = [(cache_id, corruption.name, severity, self.records[i].content_hash(modality), seed) for i in rows]
        todo = [j for j, key in enumerate(keys) if key not in self._corrupted]
        if todo:
            values = []
            for j in todo:
                # One generator per (sample, severity): results do not depend on evaluation order.
                rng = np.random.default_rng(
                    [seed, list(CORRUPTIONS).index(corruption.name), severity, int(keys[j][3][:15], 16)]
                )
                values.append(corruption.apply(self.decoded[rows[j]].get(modality), corruption.levels[severity], rng))
            fresh = encode_values(encoder, values, batch_size=256, device=device).numpy()
            for j, row in zip(todo, fresh, strict=True):
                self._corrupted[keys[j]] = row
        return (
            torch.from_numpy(np.stack([self._corrupted[k] for k in keys])) if keys else torch.zeros(0, encoder.out_dim)
        )


# --------------------------------------------------------------------------- robustness


def _scores(model, data: EmbeddedRecords, options: EvaluationOptions) -> dict[str, float | None]:
    y = data.labels.numpy()
    return compute_metrics(
        y, classify_embedded(model, data), model.classes, ece_bins=options.ece_bins, top_k=options.top_k
    ).values


def sweep_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int, ece_bins: int = 15) -> dict[str, float | None]:
    """:data:`SWEEP_METRICS` of one corruption severity, with the definitions of :func:`compute_metrics`."""
    y = np.asarray(y_true, dtype=int)
    p = _normalised(proba)
    pred = p.argmax(axis=1)
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": _balanced_accuracy(y, pred) if len(np.unique(y)) > 1 else None,
        "f1_macro": float(skm.f1_score(y, pred, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(y, p, labels=np.arange(n_classes))),
        "ece": expected_calibration_error(y, p, ece_bins),
    }


def missing_modality_table(model, data: EmbeddedRecords, options: EvaluationOptions) -> list[SubsetResult]:
    """Metrics for every non-empty subset of the model's modalities (2^M - 1 rows, largest first)."""
    out = []
    modalities = model.modalities
    for size in range(len(modalities), 0, -1):
        for kept in itertools.combinations(modalities, size):
            mask = torch.tensor([m in kept for m in modalities], dtype=torch.bool)
            masked = EmbeddedRecords(data.embeddings, data.present & mask, data.labels, data.ids)
            out.append(SubsetResult(list(kept), _scores(model, masked, options)))
    return out


def corruption_sweeps(
    model, data: EmbeddedRecords, inputs: SplitInputs, rows: list[int], options: EvaluationOptions
) -> list[CorruptionSweep]:
    """Metric-vs-severity for each corruption of a modality the model uses.

    ``rows`` maps ``data``'s rows to ``inputs.records``. Severity 0 reuses the clean
    embeddings; other severities re-encode only the corrupted modality.
    """
    out = []
    y = data.labels.numpy()
    for corruption in (CORRUPTIONS[name] for name in options.corruptions):
        if corruption.modality not in model.modalities:
            continue
        column = model.modalities.index(corruption.modality)
        have = data.present[:, column].nonzero().flatten()
        encoder = model.encoders[corruption.modality]
        values = []
        for severity in range(len(corruption.levels)):
            embeddings = dict(data.embeddings)
            if severity > 0 and len(have):
                corrupted = embeddings[corruption.modality].clone()
                corrupted[have] = inputs.corrupted_embeddings(
                    encoder, corruption, severity, [rows[i] for i in have.tolist()], options.seed, model.device
                )
                embeddings[corruption.modality] = corrupted
            proba = classify_embedded(model, EmbeddedRecords(embeddings, data.present, data.labels, data.ids))
            values.append(sweep_metrics(y, proba, len(model.classes), options.ece_bins))
        out.append(
            CorruptionSweep(
                corruption.name, corruption.modality, corruption.description, corruption.parameter,
                list(corruption.levels), list(corruption.level_labels), values, int(len(have)),
            )
        )  # fmt: skip
    return out


def modality_reliance(model, data: EmbeddedRecords, options: EvaluationOptions) -> list[RelianceScore]:
    """Permutation importance per modality: accuracy drop when that modality's embeddings
    and presence are shuffled across rows (``options.reliance_repeats`` seeded permutations)."""
    y = data.labels.numpy()
    base = float((classify_embedded(model, data).argmax(axis=1) == y).mean())
    rng = np.random.default_rng(options.seed)
    out = []
    for column, m in enumerate(model.modalities):
        drops = []
        for _ in range(options.reliance_repeats):
            perm = torch.from_numpy(rng.permutation(len(data)))
            embeddings = dict(data.embeddings) | {m: data.embeddings[m][perm]}
            present = data.present.clone()
            present[:, column] = data.present[perm, column]
            proba = classify_embedded(model, EmbeddedRecords(embeddings, present, data.labels, data.ids))
            drops.append(base - float((proba.argmax(axis=1) == y).mean()))
        out.append(RelianceScore(m, float(np.mean(drops)), float(np.std(drops)), drops))
    return out


# --------------------------------------------------------------------------- cost


def _rss_kib(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _measure_peak_memory(run: Callable[[], None], device: torch.device) -> tuple[float | None, str]:
    """Peak memory of ``run()`` in MiB and how it was measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return (
            torch.cuda.max_memory_allocated(device) - before
        ) / 2**20, "torch.cuda.max_memory_allocated (above allocations before the pass)"
    before = _rss_kib("VmRSS")
    try:
        # Linux: writing 5 resets the process's peak RSS (VmHWM), so the peak is this pass's own.
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    if before is not None and reset:
        run()
        peak = _rss_kib("VmHWM")
        return (
            max(peak - before, 0) / 1024 if peak is not None else None
        ), "peak RSS increase (VmHWM after resetting it via /proc/self/clear_refs)"
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB elsewhere
    return grew * unit / 2**20, "growth of the process's lifetime peak RSS (resource.ru_maxrss); 0 if it peaked earlier"


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@torch.inference_mode()
def measure_cost(
    model, samples: list[DecodedSample], data: EmbeddedRecords, options: EvaluationOptions, single_calls: int = 8
) -> Cost:
    """Parameter counts, batch-1 latency and large-batch throughput (end to end and fusion only), peak memory."""
    device = model.device
    batch = samples[: options.large_batch]
    emb_batch = data.subset(list(range(min(options.large_batch, len(data)))))
    singles = samples[:single_calls]

    def classify_rows(rows: EmbeddedRecords) -> None:
        with autocast(device):
            model.classify({m: e.to(device) for m, e in rows.embeddings.items()}, rows.present)

    model.predict_proba(singles[:2], batch_size=1)  # warm-up: lazy initialisation, allocator
    e2e_single = [_timed(lambda s=s: model.predict_proba([s], batch_size=1), device) for s in singles]
    seconds: list[float] = []
    # One large pass gives both the throughput and the peak memory: preprocessing dominates it on a CPU.
    peak, method = _measure_peak_memory(
        lambda: seconds.append(_timed(lambda: model.predict_proba(batch, batch_size=len(batch)), device)), device
    )
    fusion_rows = [data.subset([i]) for i in range(min(single_calls, len(data)))]
    classify_rows(fusion_rows[0])
    fusion_single = [_timed(lambda r=r: classify_rows(r), device) for r in fusion_rows]
    fusion_large = min(_timed(lambda: classify_rows(emb_batch), device) for _ in range(3))
    fusion_params = sum(p.numel() for p in itertools.chain(model.fusion.parameters(), model.head.parameters()))
    return Cost(
        device=describe_device(device),
        parameters=model.parameter_count(),
        fusion_parameters=int(fusion_params),
        large_batch=len(batch),
        latency_ms_end_to_end=float(np.median(e2e_single) * 1000),
        throughput_end_to_end=len(batch) / seconds[0],
        latency_ms_fusion=float(np.median(fusion_single) * 1000),
        throughput_fusion=len(emb_batch) / fusion_large,
        peak_memory_mb=peak,
        peak_memory_method=method,
    )


# --------------------------------------------------------------------------- evaluation


def _as_dataset(dataset: Dataset | str | Path) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset)


def _as_embedding_cache(embedding_cache: EmbeddingCache | bool) -> EmbeddingCache | None:
    if isinstance(embedding_cache, EmbeddingCache):
        return embedding_cache
    return EmbeddingCache() if embedding_cache else None


def evaluate_checkpoint(
    checkpoint: LoadedCheckpoint | str | Path,
    dataset: Dataset | str | Path,
    split: str = "test",
    options: EvaluationOptions | None = None,
    *,
    inputs: SplitInputs | None = None,
    embedding_cache: EmbeddingCache | bool = True,
    device: torch.device | str | None = None,
) -> CheckpointEvaluation:
    """Evaluate one checkpoint on one split of a dataset.

    Args:
        checkpoint: a loaded checkpoint or its folder.
        dataset: a loaded dataset or its folder.
        split: ``train``, ``val`` or ``test``.
        options: what to compute (default :class:`EvaluationOptions`).
        inputs: decoded samples and corrupted embeddings shared with other checkpoints
            evaluated on the same split (see :func:`evaluate`).
        embedding_cache: an :class:`EmbeddingCache`, ``True`` for the default one, ``False`` for none.
        device: where to run (default :func:`core.device.pick_device`).

    Raises:
        EvaluationError: an empty split, or no row whose label is one of the checkpoint's classes.
    """
    started = time.perf_counter()
    options = options or EvaluationOptions()
    unknown = sorted(set(options.corruptions) - set(CORRUPTIONS))
    if unknown:
        raise EvaluationError(f"Unknown corruption(s) {', '.join(unknown)}; choose from {', '.join(CORRUPTIONS)}.")
    dataset = _as_dataset(dataset)
    loaded = (
        checkpoint
        if isinstance(checkpoint, LoadedCheckpoint)
        else load_checkpoint(checkpoint, device=pick_device(device))
    )
    model = loaded.model
    inputs = (
        inputs
        if inputs is not None and inputs.dataset is dataset and inputs.split == split
        else SplitInputs(dataset, split)
    )
    if not inputs.records:
        raise EvaluationError(f"Split {split!r} of {dataset.root} is empty (sizes: {dataset.split_sizes()}).")
    embedded = embed_records(model, inputs.records, cache=_as_embedding_cache(embedding_cache), limits=dataset.limits)
    labels = embedded.labels.numpy()
    rows = np.flatnonzero(labels >= 0).tolist()
    excluded = Counter(inputs.records[i].label for i in np.flatnonzero(labels < 0))
    notes = []
    if excluded:
        notes.append(
            f"{sum(excluded.values())} row(s) left out: their label is not one of the checkpoint's classes "
            f"({', '.join(f'{k!r}: {v}' for k, v in sorted(excluded.items())[:10])})."
        )
    trained_on = loaded.card.get("dataset", {}).get("fingerprint")
    if trained_on and trained_on != dataset.fingerprint:
        notes.append(
            "The checkpoint was trained on another version of this dataset (its card's fingerprint differs): "
            "these metrics may not match the card's, and rows may overlap its training data."
        )
    if not rows:
        raise EvaluationError(
            f"None of the {len(labels)} rows of split {split!r} has a label the checkpoint {loaded.name} knows "
            f"(it knows {', '.join(model.classes[:10])}{', ...' if len(model.classes) > 10 else ''})."
        )
    data = embedded.subset(rows)
    y = data.labels.numpy()
    proba = classify_embedded(model, data)
    metrics = compute_metrics(y, proba, model.classes, ece_bins=options.ece_bins, top_k=options.top_k)
    pred = proba.argmax(axis=1)
    samples = [
        SampleResult(
            id=data.ids[j],
            label=model.classes[y[j]],
            prediction=model.classes[pred[j]],
            probabilities=np.round(proba[j].astype(float), 6).tolist(),
            correct=bool(pred[j] == y[j]),
            present=[m for k, m in enumerate(model.modalities) if data.present[j, k]],
            extras=dict(inputs.records[i].extras),
        )
        for j, i in enumerate(rows)
    ]
    robust = options.robustness
    return CheckpointEvaluation(
        name=loaded.name,
        path=str(loaded.path),
        sha256=loaded.card["weights"]["sha256"],
        fusion=loaded.card["fusion"],
        kind=loaded.card.get("kind", "fusion"),
        modalities=list(model.modalities),
        classes=list(model.classes),
        dataset=str(dataset.root),
        dataset_fingerprint=dataset.fingerprint,
        split=split,
        n_rows=len(labels),
        n_excluded=int(sum(excluded.values())),
        excluded_labels=dict(excluded),
        metrics=metrics,
        intervals=bootstrap_intervals(
            y, proba, metrics, resamples=options.bootstrap, seed=options.seed, ece_bins=options.ece_bins
        ),
        curves=compute_curves(y, proba, model.classes, metrics, options.ece_bins),
        samples=samples,
        missing_modality=missing_modality_table(model, data, options) if robust else [],
        corruptions=corruption_sweeps(model, data, inputs, rows, options) if robust else [],
        reliance=modality_reliance(model, data, options) if robust else [],
        cost=measure_cost(model, [inputs.decoded[i] for i in rows], data, options) if options.cost else None,
        options=options,
        notes=metrics.notes + notes,
        seconds=time.perf_counter() - started,
    )


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produce an evaluation, recorded in reports."""
    import plotly
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "scipy": scipy.__version__,
        "plotly": plotly.__version__,
    }


def compare(
    results: Sequence[CheckpointEvaluation], options: EvaluationOptions | None = None, seconds: float = 0.0
) -> EvaluationReport:
    """Bundle per-checkpoint results of one split into a report with every pairwise test."""
    options = options or EvaluationOptions()
    if not results:
        raise EvaluationError("No checkpoint to compare.")
    first = results[0]
    if any((r.dataset_fingerprint, r.split) != (first.dataset_fingerprint, first.split) for r in results):
        raise EvaluationError("Results compared side by side must come from the same dataset and split.")
    pairwise = [
        paired_test(a, b, resamples=options.bootstrap, seed=options.seed) for a, b in itertools.combinations(results, 2)
    ]
    return EvaluationReport(
        dataset=first.dataset,
        dataset_fingerprint=first.dataset_fingerprint,
        split=first.split,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        device=describe_device(pick_device()),
        versions=library_versions(),
        checkpoints=list(results),
        pairwise=pairwise,
        seconds=seconds,
    )


def _unique_names(results: list[CheckpointEvaluation]) -> None:
    # Two folders may hold checkpoints with the same card name; figures key on names.
    seen: Counter[str] = Counter(r.name for r in results)
    for r in results:
        if seen[r.name] > 1:
            r.name = f"{r.name} ({Path(r.path).parent.name}/{Path(r.path).name})"


def evaluate(
    checkpoints: Sequence[LoadedCheckpoint | str | Path],
    dataset: Dataset | str | Path,
    split: str = "test",
    options: EvaluationOptions | None = None,
    *,
    embedding_cache: EmbeddingCache | bool = True,
    device: torch.device | str | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Evaluate several checkpoints on one split, sharing decoded inputs and corrupted
    embeddings between them, and test every pair. No evaluation cache: see :func:`evaluate_cached`."""
    started = time.perf_counter()
    options = options or EvaluationOptions()
    dataset = _as_dataset(dataset)
    inputs = SplitInputs(dataset, split)
    results = []
    for checkpoint in checkpoints:
        if progress is not None:
            progress(f"evaluating {getattr(checkpoint, 'name', checkpoint)}")
        results.append(
            evaluate_checkpoint(
                checkpoint, dataset, split, options, inputs=inputs, embedding_cache=embedding_cache, device=device
            )
        )
    _unique_names(results)
    return compare(results, options, time.perf_counter() - started)


def default_evaluation_cache_dir() -> Path:
    """``$FUSION_CACHE_DIR/evaluations`` if set, else ``.cache/evaluations`` at the repository root."""
    override = os.environ.get("FUSION_CACHE_DIR")
    root = Path(override).expanduser() if override else Path(__file__).resolve().parent.parent / ".cache"
    return root / "evaluations"


def evaluation_cache_key(sha256: str, dataset_fingerprint: str, split: str, options: EvaluationOptions) -> str:
    """Key of one cached evaluation: checkpoint weights, dataset content, split and options."""
    return hashlib.sha256(f"{sha256}|{dataset_fingerprint}|{split}|{options.key()}".encode()).hexdigest()[:32]


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload))


def _read_cached(path: Path) -> CheckpointEvaluation | None:
    """A cached result, or ``None`` when missing or unreadable (the corrupt file is removed)."""
    try:
        return CheckpointEvaluation.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        path.unlink(missing_ok=True)
        return None


def evaluate_cached(
    checkpoints: Sequence[LoadedCheckpoint | str | Path],
    dataset: Dataset | str | Path,
    split: str = "test",
    options: EvaluationOptions | None = None,
    *,
    cache_dir: str | Path | None = None,
    embedding_cache: EmbeddingCache | bool = True,
    device: torch.device | str | None = None,
    progress: Callable[[str], None] | None = None,
    inputs: SplitInputs | None = None,
) -> EvaluationReport:
    """:func:`evaluate`, with each checkpoint's result cached as JSON under ``cache_dir``
    (default :func:`default_evaluation_cache_dir`), keyed by (checkpoint sha256, dataset
    fingerprint, split, options). Only misses are computed; pairwise tests are recomputed
    from the cached per-sample results (cheap and seeded, so identical).

    ``inputs`` lets several calls on the same split share decoded samples and corrupted
    embeddings (e.g. evaluating checkpoints one at a time to report progress)."""
    started = time.perf_counter()
    options = options or EvaluationOptions()
    dataset = _as_dataset(dataset)
    root = Path(cache_dir) if cache_dir is not None else default_evaluation_cache_dir()
    if inputs is None:
        inputs = SplitInputs(dataset, split)
    elif inputs.dataset is not dataset or inputs.split != split:
        raise ValueError("inputs were prepared for another dataset or split")
    results = []
    for checkpoint in checkpoints:
        card = checkpoint.card if isinstance(checkpoint, LoadedCheckpoint) else read_card(checkpoint)
        path = root / f"{evaluation_cache_key(card['weights']['sha256'], dataset.fingerprint, split, options)}.json"
        result = _read_cached(path)
        if result is None:
            if progress is not None:
                progress(f"evaluating {card.get('name', checkpoint)}")
            result = evaluate_checkpoint(
                checkpoint, dataset, split, options, inputs=inputs, embedding_cache=embedding_cache, device=device
            )
            _write_json_atomic(path, result.to_json())
        results.append(result)
    _unique_names(results)
    return compare(results, options, time.perf_counter() - started)


__all__ = [
    "CORRUPTIONS",
    "HEADLINE_METRICS",
    "CheckpointEvaluation",
    "Cost",
    "CorruptionSweep",
    "Curve",
    "Curves",
    "EvaluationError",
    "EvaluationOptions",
    "EvaluationReport",
    "Interval",
    "Metrics",
    "PairedTest",
    "RelianceScore",
    "ReliabilityBins",
    "SWEEP_METRICS",
    "SampleResult",
    "SplitInputs",
    "SubsetResult",
    "bootstrap_intervals",
    "compare",
    "compute_curves",
    "compute_metrics",
    "disagreements",
    "evaluate",
    "evaluate_cached",
    "evaluate_checkpoint",
    "expected_calibration_error",
    "headline_metrics",
    "library_versions",
    "paired_test",
    "sweep_metrics",
]
