"""Scalar metrics of predicted probabilities, through scikit-learn's metric functions.

The metric keys are the project's one vocabulary (cards, reports, figures): ``accuracy``,
``balanced_accuracy``, ``f1_macro``, ``roc_auc_macro``, ``log_loss``, ``brier``, ``ece``...
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from core.errors import EvaluationError
from core.evaluate.curves import _normalised, expected_calibration_error
from core.evaluate.results import Metrics

HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc_macro", "log_loss", "brier", "ece")
"""Metrics given bootstrap confidence intervals."""


SWEEP_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "ece")
"""Metrics of each corruption severity."""


LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "hamming_loss"})


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
        "balanced_accuracy": _balanced_accuracy(y, pred),
        "f1_macro": float(skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "log_loss": float(skm.log_loss(y, np.clip(p, 1e-7, 1.0), labels=labels)),
    }


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y``: scikit-learn's balanced accuracy, from its
    confusion matrix. ``balanced_accuracy_score`` itself warns when a prediction names a class
    absent from the split (normal here), and a ``warnings.catch_warnings`` around it would not
    do: it changes the filters process-wide, so evaluations in other threads let the warning
    through or lose theirs. (``recall_score`` over the present labels gives the same number,
    1.5x slower; this runs for every slice and sweep.)"""
    matrix = skm.confusion_matrix(y, pred)
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


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
    auc: dict[str, float | None] = dict.fromkeys(classes)  # None: undefined for the class
    ap: dict[str, float | None] = dict.fromkeys(classes)
    absent = [classes[c] for c in labels if not onehot[:, c].any()]
    ranked = [c for c in labels if onehot[:, c].any() and not onehot[:, c].all()]
    # One call per metric for all classes (one-vs-rest columns of an indicator matrix): the same
    # binary score per class as a call per class, without validating the inputs 2 x C times.
    per_class_auc = np.atleast_1d(skm.roc_auc_score(onehot[:, ranked], p[:, ranked], average=None)) if ranked else []
    per_class_ap = np.atleast_1d(skm.average_precision_score(onehot[:, ranked], p[:, ranked], average=None)) if ranked else []
    for c, auc_c, ap_c in zip(ranked, per_class_auc, per_class_ap, strict=True):
        auc[classes[c]], ap[classes[c]] = float(auc_c), float(ap_c)
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
