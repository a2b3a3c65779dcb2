"""Explanation jobs: shared by key, queued behind the server's slots, cancelled when their browser is gone."""

from __future__ import annotations

import threading
import time

from core.job_queue import JobQueue
from dashboard.jobs import ORPHAN_GRACE_S, JobRegistry


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def until_cancelled(progress, cancel: threading.Event):
    """A job that runs until it is cancelled."""
    progress(0.5)
    cancel.wait(30)
    return "never" if not cancel.is_set() else None


def test_a_job_whose_sessions_all_ended_is_cancelled_after_the_grace_period():
    alive = {"tab-1": True, "tab-2": True}
    registry = JobRegistry(JobQueue(2), lambda s: alive.get(s, False), watch=False)
    job = registry.submit("key", until_cancelled, owner="alice", session="tab-1")
    assert registry.submit("key", until_cancelled, owner="bob", session="tab-2") is job  # shared, awaited by both
    wait_for(lambda: job.progress == 0.5)
    now = time.monotonic()
    alive["tab-1"] = False
    assert registry.cancel_orphans(now) == [] and registry.cancel_orphans(now + 2 * ORPHAN_GRACE_S) == []
    alive["tab-2"] = False
    assert registry.cancel_orphans(now) == []  # gone just now: a reload may reconnect
    alive["tab-2"] = True
    assert registry.cancel_orphans(now + ORPHAN_GRACE_S) == []  # it did: the clock starts again
    alive["tab-2"] = False
    assert registry.cancel_orphans(now + ORPHAN_GRACE_S) == []
    assert registry.cancel_orphans(now + 2 * ORPHAN_GRACE_S) == ["key"]
    wait_for(lambda: job.done)
    assert job.cancel.is_set() and job.result is None
    assert registry.queue.running() == []  # its slot was given back


def test_jobs_beyond_the_servers_slots_wait_and_see_their_place():
    registry = JobRegistry(JobQueue(1), lambda s: True)
    first = registry.submit("a", until_cancelled, owner="alice", session="s")
    wait_for(lambda: first.ahead is None)
    second = registry.submit("b", lambda progress, cancel: "b done", owner="bob", session="t")
    third = registry.submit("c", lambda progress, cancel: "c done", owner="carol", session="u")
    wait_for(lambda: (second.ahead, third.ahead) == (0, 1))
    assert not second.done and not third.done
    registry.cancel("a")
    wait_for(lambda: second.done and third.done)
    assert (second.result, third.result) == ("b done", "c done")


def test_a_failed_job_is_reported_and_not_kept():
    registry = JobRegistry(JobQueue(1), lambda s: True)

    def fails(progress, cancel):
        raise RuntimeError("boom")

    job = registry.submit("k", fails, owner="local")
    wait_for(lambda: job.done)
    assert isinstance(job.error, RuntimeError)
    retry = registry.submit("k", lambda progress, cancel: 42, owner="local")
    wait_for(lambda: retry.done)
    assert retry is not job and retry.result == 42
    assert registry.submit("k", fails, owner="local") is retry  # a finished result is cached
