"""Bootstrap intervals (seeded, vectorised, equal to scikit-learn per resample) and McNemar's test."""

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn import metrics as skm

from core.evaluate import bootstrap_intervals, compute_metrics, paired_test
from core.evaluate.bootstrap import _resample_weights, _weighted_auc
from tests.core.evaluate.conftest import random_proba


def test_bootstrap_is_seeded_contains_the_estimate_and_matches_sklearn_per_resample():
    y = np.random.default_rng(5).integers(0, 3, size=200)
    p = random_proba(200, 3, seed=5)
    p[np.arange(200), y] += 0.5
    p /= p.sum(1, keepdims=True)
    m = compute_metrics(y, p, ["a", "b", "c"])
    first = bootstrap_intervals(y, p, m, resamples=1000, seed=0)
    assert first == bootstrap_intervals(y, p, m, resamples=1000, seed=0)
    assert first != bootstrap_intervals(y, p, m, resamples=1000, seed=1)
    for name, interval in first.items():
        assert interval.low <= interval.point <= interval.high, name
    # One resample through the vectorised path equals sklearn on the materialised rows.
    weights = _resample_weights(200, 1, seed=9)
    rows = np.repeat(np.arange(200), weights[0].astype(int))
    auc = np.mean([_weighted_auc(weights.T, y == c, p[:, c])[0] for c in range(3)])
    assert auc == pytest.approx(skm.roc_auc_score(y[rows], p[rows], multi_class="ovr"))


def test_mcnemar_on_a_known_table():
    def result(name, correct):
        return SimpleNamespace(
            name=name, samples=[SimpleNamespace(id=str(i), correct=c) for i, c in enumerate(correct)]
        )

    # 20 both right, 10 only a, 2 only b, 8 both wrong
    a = [True] * 20 + [True] * 10 + [False] * 2 + [False] * 8
    b = [True] * 20 + [False] * 10 + [True] * 2 + [False] * 8
    test = paired_test(result("a", a), result("b", b), resamples=500)
    assert (test.both_correct, test.only_a_correct, test.only_b_correct, test.both_wrong) == (20, 10, 2, 8)
    assert test.mcnemar_exact_p == pytest.approx(2 * (1 + 12 + 66) / 2**12)
    assert test.mcnemar_chi2 == pytest.approx(49 / 12)
    assert test.mcnemar_chi2_p == pytest.approx(0.04331, abs=1e-4)
    assert test.difference.point == pytest.approx(8 / 40)
    assert test.difference.low <= 0.2 <= test.difference.high
