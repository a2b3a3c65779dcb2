"""The admission queue: at most N jobs run, the rest wait first come first served, and see their place."""

from __future__ import annotations

import threading
import time

import pytest

from core.errors import Cancelled
from core.job_queue import JobQueue


def test_capacity_jobs_run_and_the_others_wait_in_order():
    queue = JobQueue(capacity=2)
    tickets = [queue.join("explain", f"user{i}", f"job{i}") for i in range(5)]
    assert [t.running for t in tickets] == [True, True, False, False, False]
    assert [queue.ahead(t) for t in tickets] == [0, 0, 0, 1, 2]
    queue.leave(tickets[1])
    assert tickets[2].running and [queue.ahead(t) for t in tickets[3:]] == [0, 1]
    queue.leave(tickets[3])  # a waiting job that gives up leaves the line
    assert queue.ahead(tickets[4]) == 0 and not tickets[4].running
    queue.leave(tickets[0])
    assert tickets[4].running
    assert [t.label for t in queue.running()] == ["job2", "job4"] and queue.waiting() == []


def test_no_more_than_capacity_run_at_once_under_threads():
    queue = JobQueue(capacity=3)
    running, peak, lock = 0, 0, threading.Lock()

    def job():
        nonlocal running, peak
        with queue.slot("evaluate", "local"):
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.02)
            with lock:
                running -= 1

    threads = [threading.Thread(target=job) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak == 3 and running == 0 and queue.running() == [] and queue.waiting() == []


def test_a_waiting_job_reports_its_place_and_can_be_cancelled():
    queue = JobQueue(capacity=1)
    blocker = queue.join("train", "alice")
    cancel, places = threading.Event(), []

    def waiter():
        with pytest.raises(Cancelled), queue.slot("explain", "bob", cancel=cancel, on_wait=places.append):
            pass

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 5
    while not places and time.monotonic() < deadline:
        time.sleep(0.01)
    cancel.set()
    thread.join(5)
    assert places and set(places) == {0}
    assert queue.waiting() == []  # the cancelled job left the line
    assert queue.running() == [blocker]


def test_a_slot_is_given_back_when_the_job_fails():
    queue = JobQueue(capacity=1)
    with pytest.raises(RuntimeError), queue.slot("explain", "local"):
        raise RuntimeError("boom")
    assert queue.join("explain", "local").running


def test_wait_times_out_while_in_line_and_capacity_is_at_least_one():
    queue = JobQueue(capacity=0)
    assert queue.capacity == 1
    first, second = queue.join("a", "x"), queue.join("b", "x")
    started = time.monotonic()
    assert not queue.wait(second, timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 2
    queue.leave(first)
    assert queue.wait(second, timeout=0.3)
