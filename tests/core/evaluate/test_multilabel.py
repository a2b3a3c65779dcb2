"""Multi-label metrics against scikit-learn, tuned thresholds, bootstrap intervals."""

import numpy as np
import pytest
from sklearn import metrics as skm

from core.evaluate.multilabel import decisions, multilabel_intervals, multilabel_metrics, tune_thresholds

LABELS = ["a", "b", "c"]


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.5, 0.3, 0.1]).astype(float)
    proba = np.clip(y * 0.6 + rng.random((n, 3)) * 0.5, 0, 1)
    return y, proba


def test_metrics_agree_with_sklearn():
    y, proba = data()
    thresholds = {"a": 0.5, "b": 0.4}
    m = multilabel_metrics(y, proba, LABELS, thresholds)
    predicted = decisions(proba, LABELS, thresholds).astype(int)
    assert predicted[:, 1].sum() == (proba[:, 1] >= 0.4).sum() and predicted[:, 2].sum() == (proba[:, 2] >= 0.5).sum()
    v = m.values
    assert v["f1_micro"] == pytest.approx(skm.f1_score(y, predicted, average="micro"))
    assert v["f1_macro"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert v["hamming_loss"] == pytest.approx(skm.hamming_loss(y, predicted))
    assert v["exact_match"] == v["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert v["average_precision_macro"] == pytest.approx(skm.average_precision_score(y, proba, average="macro"))
    assert m.roc_auc_per_class["c"] == pytest.approx(skm.roc_auc_score(y[:, 2], proba[:, 2]))


def test_thresholds_maximise_each_labels_f1_on_the_given_rows():
    y, proba = data(seed=1)
    tuned = tune_thresholds(y, proba, LABELS)
    for j, label in enumerate(LABELS):
        best = max(skm.f1_score(y[:, j], proba[:, j] >= t, zero_division=0) for t in np.arange(0.05, 0.96, 0.05))
        assert skm.f1_score(y[:, j], proba[:, j] >= tuned[label], zero_division=0) == pytest.approx(best)
    assert tune_thresholds(np.zeros((5, 1)), np.random.default_rng(0).random((5, 1)), ["never"]) == {"never": 0.5}


def test_intervals_hold_their_point_estimates():
    y, proba = data(seed=2)
    m = multilabel_metrics(y, proba, LABELS, {})
    intervals = multilabel_intervals(y, proba, LABELS, {}, m, resamples=300, seed=0)
    for name in ("f1_micro", "f1_macro", "f1_samples", "hamming_loss", "exact_match"):
        assert intervals[name].low <= m.values[name] <= intervals[name].high, name
