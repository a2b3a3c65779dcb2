"""Scalar metrics against scikit-learn on fixed arrays, and what a split cannot define."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn import metrics as skm

from core.errors import EvaluationError
from core.evaluate import bootstrap_intervals, compute_metrics, headline_metrics
from tests.core.evaluate.conftest import random_proba


def test_multiclass_metrics_agree_with_sklearn():
    classes = ["a", "b", "c", "d"]
    y = np.random.default_rng(1).integers(0, 4, size=60)
    p = random_proba(60, 4)
    m = compute_metrics(y, p, classes)
    pred = p.argmax(1)
    onehot = np.eye(4)[y]
    v = m.values
    assert v["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert v["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert v["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert v["precision_weighted"] == pytest.approx(skm.precision_score(y, pred, average="weighted", zero_division=0))
    assert v["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert v["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert v["top_2_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=2))
    assert v["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert v["roc_auc_micro"] == pytest.approx(skm.roc_auc_score(onehot, p, average="micro"))
    assert v["average_precision_macro"] == pytest.approx(skm.average_precision_score(onehot, p, average="macro"))
    assert v["brier"] == pytest.approx(((p - onehot) ** 2).sum(1).mean())
    assert m.roc_auc_per_class["c"] == pytest.approx(skm.roc_auc_score(y == 2, p[:, 2]))
    assert not m.notes


def test_predicting_a_class_absent_from_the_split_scores_quietly_in_any_thread():
    y = np.array([0, 1, 2] * 10)
    p = random_proba(30, 4, seed=3)
    p[::4, 3] = 10.0  # every fourth row predicts class "d", which no row has
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.balanced_accuracy_score(y, p.argmax(1))  # warns "y_pred contains classes not in y_true"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ThreadPoolExecutor(4) as pool:  # evaluations run in threads beside each other
            scored = list(pool.map(lambda _: compute_metrics(y, p, ["a", "b", "c", "d"]), range(8)))
        headline = headline_metrics(y, p)
    assert not [w for w in caught if "y_pred" in str(w.message)]
    assert all(m.values["balanced_accuracy"] == pytest.approx(expected) for m in scored)
    assert headline["balanced_accuracy"] == pytest.approx(expected)


def test_absent_class_has_no_auc_and_a_note():
    y = np.array([0, 1, 2] * 10)
    p = random_proba(30, 4, seed=2)
    m = compute_metrics(y, p, ["a", "b", "c", "d"])
    assert m.roc_auc_per_class["d"] is None and m.average_precision_per_class["d"] is None
    assert "absent" in m.notes[0] and "d" in m.notes[0]
    onehot = np.eye(4)[y]
    assert m.values["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(onehot[:, :3], p[:, :3], average="macro"))
    assert m.values["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=[0, 1, 2, 3]))


def test_binary_metrics():
    y = np.array([0, 1] * 20)
    p = random_proba(40, 2, seed=3)
    m = compute_metrics(y, p, ["neg", "pos"])
    assert m.values["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1]))
    assert m.values["roc_auc_macro"] == pytest.approx(m.values["roc_auc"])
    assert m.values["brier"] == pytest.approx(skm.brier_score_loss(y, p[:, 1]))
    assert m.values["average_precision_macro"] == pytest.approx(
        (skm.average_precision_score(y, p[:, 1]) + skm.average_precision_score(1 - y, p[:, 0])) / 2
    )
    assert not any(k.startswith("top_") for k in m.values)


def test_single_class_split_explains_what_is_undefined():
    y = np.zeros(10, dtype=int)
    p = random_proba(10, 3, seed=4)
    m = compute_metrics(y, p, ["a", "b", "c"])
    assert m.values["accuracy"] == pytest.approx((p.argmax(1) == 0).mean())
    assert m.values["roc_auc_macro"] is None and m.values["average_precision_micro"] is None
    assert "at least two classes" in m.undefined["roc_auc_macro"]
    assert m.notes
    intervals = bootstrap_intervals(y, p, m, resamples=50)
    assert "roc_auc_macro" not in intervals and intervals["accuracy"].low is not None
    with pytest.raises(EvaluationError, match="no rows"):
        compute_metrics(np.zeros(0, dtype=int), np.zeros((0, 3)), ["a", "b", "c"])


def test_headline_metrics_use_the_same_keys_as_full_metrics():
    y = np.array([0, 1, 2, 1, -1])
    p = random_proba(5, 3, seed=6)
    headline = headline_metrics(y, p)
    full = compute_metrics(y[:4], p[:4], ["a", "b", "c"]).values
    assert headline["n"] == 4
    for key in ("accuracy", "balanced_accuracy", "f1_macro", "log_loss"):
        assert headline[key] == pytest.approx(full[key])
