"""Trainings side by side in forked processes: results, events and failures come back."""

import pytest

from core.errors import TrainingError
from core.train.side_by_side import run_side_by_side


def _task(value):
    def task(emit):
        emit({"event": "epoch", "model": value})
        return value * 2

    return task


def test_results_and_events_come_back_whatever_the_slots():
    for slots in (1, 2):
        events = []
        results = run_side_by_side({f"t{k}": _task(k) for k in range(3)}, events.append, slots=slots)
        assert results == {"t0": 0, "t1": 2, "t2": 4}
        assert sorted(e["model"] for e in events) == [0, 1, 2]


def test_a_failed_training_raises_its_error_with_the_traceback_in_details():
    def broken(emit):
        raise ValueError("bad shape")

    with pytest.raises(TrainingError, match="broken: ValueError: bad shape") as info:
        run_side_by_side({"fine": _task(1), "broken": broken}, None)
    assert "Traceback" in info.value.details


def test_a_process_that_dies_without_a_result_is_reported():
    import os

    def dies(emit):
        os._exit(3)

    with pytest.raises(TrainingError, match="dies stopped without a result"):
        run_side_by_side({"dies": dies}, None)
