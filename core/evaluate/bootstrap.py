"""Bootstrap confidence intervals and paired tests, vectorised over resamples.

Every bootstrap statistic is a weighted sum over rows, so one ``[resamples, n]`` matrix of
row multiplicities evaluates it on all resamples at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from scipy import stats

from core.errors import EvaluationError
from core.evaluate.curves import _confidence_bins, _normalised
from core.evaluate.metrics import HEADLINE_METRICS
from core.evaluate.results import CheckpointEvaluation, Interval, Metrics, PairedTest

_DRAWN: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
_DRAWN_BYTES = 160 * 2**20
"""Resample matrices drawn recently, as small integers, at most this many bytes in all."""
_DRAWING = threading.Lock()


def _resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, n]`` multiplicities of each row in each bootstrap resample.

    Every bootstrap statistic below is a weighted sum over rows, so one matrix product
    evaluates it on all resamples at once. Recent draws are kept (as ``uint16``/``uint32``,
    bounded by :data:`_DRAWN_BYTES`): the checkpoints of a comparison resample the same rows
    and slices, and their pairwise tests too (drawing 1,000 x 15,000 takes a second).
    """
    key = (n, resamples, seed)
    with _DRAWING:
        counts = _DRAWN.get(key)
        if counts is not None:
            _DRAWN.move_to_end(key)
    if counts is None:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.uint16 if n < 2**16 else np.uint32)
        if counts.nbytes <= _DRAWN_BYTES:  # one larger draw is used once and not kept
            with _DRAWING:
                _DRAWN[key] = counts
                while sum(c.nbytes for c in _DRAWN.values()) > _DRAWN_BYTES:
                    _DRAWN.popitem(last=False)
    return counts.astype(np.float64)


def _weighted_auc(weights_t: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC (Mann-Whitney, ties count half) for every resample; NaN where undefined.

    ``weights_t`` is ``[n, resamples]`` (rows first, see :func:`bootstrap_intervals`). For each
    positive row, the weight of the negatives scored below it (and tied with it) is read off
    one running sum over the negatives in score order; every sum is of whole multiplicities, so
    the result does not depend on the float type the running sum is kept in.
    """
    resamples = weights_t.shape[1]
    negatives, positives = np.flatnonzero(~positive), np.flatnonzero(positive)
    if not len(negatives) or not len(positives):
        return np.full(resamples, np.nan)
    order = negatives[np.argsort(score[negatives], kind="stable")]
    cumulative = np.empty((len(order) + 1, resamples), weights_t.dtype)
    cumulative[0] = 0
    np.take(weights_t, order, axis=0, out=cumulative[1:])
    # Row after row in place: 3x faster than np.cumsum along axis 0 (15,000 x 1,000), same sums.
    for i in range(1, len(cumulative)):
        np.add(cumulative[i - 1], cumulative[i], out=cumulative[i])
    ranked, scores = score[order], score[positives]
    below = cumulative[np.searchsorted(ranked, scores, "left")].astype(np.float64)
    tied = cumulative[np.searchsorted(ranked, scores, "right")] - below
    weight = weights_t[positives].astype(np.float64)
    wins = ((below + 0.5 * tied) * weight).sum(axis=0)
    pairs = weight.sum(axis=0) * cumulative[-1].astype(np.float64)
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
            # Rows first: each class gathers whole rows of resample weights (float32 holds their
            # running sums exactly below 2**24 rows), instead of scattered columns of ``w``.
            w_t = np.ascontiguousarray(w.T, dtype=np.float32 if n < 2**24 else np.float64)
            aucs = np.stack([_weighted_auc(w_t, y == c, p[:, c]) for c in range(n_classes) if (y == c).any()], axis=1)
            # A small slice's resample may hold one class only: its AUC is undefined (NaN). The mean
            # over the defined ones, as np.nanmean computes it, without its warning for a resample
            # with none (warnings filters are process-wide, not safe to change from a request thread).
            defined = np.isfinite(aucs).sum(axis=1)
            samples["roc_auc_macro"] = np.where(defined > 0, np.nansum(aucs, axis=1) / np.maximum(defined, 1), np.nan)
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


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down; monotone; capped at 1)."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted.tolist()
