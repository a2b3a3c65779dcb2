"""Slices: metrics per value with intervals; the worst-slice search finds a planted failure, not noise."""

import numpy as np
import pytest

from core.evaluate import EvaluationOptions, SampleResult
from core.evaluate.slices import PRESENCE, slice_columns, slice_metrics, slice_rows, worst_slices

CLASSES = ["a", "b"]


def synthetic(n: int = 900, seed: int = 0, failing: str = "C", fail_accuracy: float = 0.45) -> list[SampleResult]:
    """Rows with a site (A, B, C; the model fails on ``failing``), a pure-noise column, a numeric
    column and an id column; accuracy 0.9 elsewhere."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        site = "ABC"[i % 3]
        correct = rng.random() < (fail_accuracy if site == failing else 0.9)
        label = CLASSES[rng.integers(2)]
        prediction = label if correct else CLASSES[1 - CLASSES.index(label)]
        confidence = rng.uniform(0.55, 0.95)
        probabilities = [confidence, 1 - confidence] if prediction == "a" else [1 - confidence, confidence]
        extras = {"site": site, "noise": "xyz"[rng.integers(3)], "snr": f"{rng.normal(10, 5):.2f}", "row": str(i)}
        rows.append(SampleResult(str(i), label, prediction, probabilities, bool(correct), ["image"], extras))
    return rows


def test_columns_bin_numbers_and_skip_ids():
    columns = slice_columns(synthetic(200))
    assert set(columns) == {PRESENCE, "site", "noise", "snr"}  # "row" is an id: nothing to learn from it
    assert len(set(columns["snr"])) == 4 and all(" to " in v for v in columns["snr"])
    assert list(slice_columns(synthetic(50), ["noise"])) == ["noise"]


def test_slice_metrics_have_intervals_support_and_gaps():
    samples = synthetic()
    slices = slice_metrics(samples, CLASSES, EvaluationOptions(bootstrap=200))
    site = {s.value: s for s in slices if s.column == "site"}
    assert {v: s.support for v, s in site.items()} == {"A": 300, "B": 300, "C": 300}
    for s in site.values():
        assert s.accuracy.low <= s.accuracy.point <= s.accuracy.high
        assert s.roc_auc_macro.point is not None
    overall = np.mean([s.correct for s in samples])
    assert site["C"].gap == pytest.approx(site["C"].accuracy.point - overall)
    assert site["C"].accuracy.high < site["A"].accuracy.low, "the failing site's interval is clear of the others"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_planted_slice_comes_first_and_noise_is_not_reported(seed):
    findings = worst_slices(synthetic(seed=seed), EvaluationOptions())
    assert findings[0].conditions == {"site": "C"}
    assert findings[0].q_value < 0.05 and findings[0].accuracy < findings[0].rest_accuracy
    reported = [f.conditions for f in findings]
    assert not [c for c in reported if set(c) <= {"noise", "snr", PRESENCE}], "a slice of pure noise was reported"
    for conditions in reported[1:]:
        assert conditions.get("site") == "C", "only refinements of the failing site may follow it"


def test_a_model_that_fails_nowhere_has_no_worst_slice():
    assert worst_slices(synthetic(fail_accuracy=0.9), EvaluationOptions()) == []


def test_min_support_bounds_what_is_tested():
    samples = synthetic(90)
    assert all(f.support >= 40 for f in worst_slices(samples, EvaluationOptions(min_support=40)))


def test_slice_rows_select_the_rows_of_a_slice():
    samples = synthetic(30)
    rows = slice_rows(samples, {"site": "B"})
    assert rows == [i for i in range(30) if i % 3 == 1]
    assert slice_rows(samples, {"site": "B", "noise": samples[1].extras["noise"]})[0] == 1
    assert slice_rows(samples, {"nowhere": "x"}) == []
