"""Trainings side by side in forked processes: results, events and failures come back."""

import os

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


def test_a_finished_training_is_handed_over_while_the_others_still_run(tmp_path):
    """``on_result`` runs here once the freed slot went to the next task, and only while some
    task still runs (the caller's work then overlaps theirs)."""
    import time

    release = tmp_path / "release"

    def short(emit):
        return "short"

    def long(emit):
        while not release.exists():  # runs until the parent has been handed the short one
            time.sleep(0.05)
        return "long"

    def waiting(emit):
        return "waiting"

    handed = []

    def on_result(name, result):
        handed.append((name, result))
        release.touch()

    results = run_side_by_side({"short": short, "long": long, "waiting": waiting}, None, slots=2, on_result=on_result)
    assert results == {"short": "short", "long": "long", "waiting": "waiting"}
    assert handed[0] == ("short", "short")  # while "long" was still running
    assert len(handed) < len(results)  # the last to finish is not handed over: nothing runs beside it


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


def test_trainings_die_with_a_killed_parent(tmp_path):
    """A SIGKILLed training run leaves no training running on in its forked processes."""
    import signal
    import subprocess
    import sys
    import time

    script = f"""
import os, time
from core.train.side_by_side import run_side_by_side
def task(emit):
    open({str(tmp_path / "child.pid")!r}, "w").write(str(os.getpid()))
    time.sleep(120)
run_side_by_side({{"long": task}}, None)
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    pid_file = tmp_path / "child.pid"
    for _ in range(300):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the training process outlived its killed parent")


def test_background_work_runs_while_a_slot_is_free_and_stops_with_the_last_task(tmp_path):
    """A slot with nothing left to run lends its core to ``background``, a step at a time, while
    the last task runs; a background that never ends does not keep the run going."""
    import itertools
    import time

    release = tmp_path / "release"

    def long(emit):
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:  # released by the background
            time.sleep(0.01)
        return release.exists()

    steps = []

    def background():
        for step in itertools.count():
            steps.append(step)
            if step == 3:
                release.touch()
            yield

    results = run_side_by_side({"long": long, "short": lambda emit: "short"}, None, slots=2, background=background())
    assert results == {"long": True, "short": "short"}
    assert len(steps) >= 4


def test_background_waits_for_a_free_slot():
    """While every slot runs a task (the next one starts as soon as a slot frees), the
    background does not run."""
    import time

    def task(emit):
        time.sleep(0.3)
        return os.getpid()

    ran = []

    def background():
        ran.append(True)
        yield

    results = run_side_by_side({"a": task, "b": task}, None, slots=1, background=background())
    assert len(set(results.values())) == 2 and ran == []


def test_a_failing_background_step_stops_the_tasks(tmp_path):
    import time

    def long(emit):
        time.sleep(60)

    def background():
        yield
        raise OSError("disk gone")

    started = time.monotonic()
    with pytest.raises(OSError, match="disk gone"):
        run_side_by_side({"long": long}, None, slots=2, background=background())
    assert time.monotonic() - started < 30  # the task was stopped, not waited for
