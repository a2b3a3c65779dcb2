"""Calibration: ECE and reliability bins on a hand-computed case."""

import numpy as np
import pytest

from core.evaluate import compute_metrics, expected_calibration_error


def test_ece_on_a_hand_computed_case():
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    # bins: {0.9: one right one wrong}, {0.6: right}, {0.7: right}
    expected = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1 - 0.6) + 1 / 4 * abs(1 - 0.7)
    assert expected_calibration_error(y, p, 15) == pytest.approx(expected)
    assert compute_metrics(y, p, ["a", "b"]).values["ece"] == pytest.approx(expected)
