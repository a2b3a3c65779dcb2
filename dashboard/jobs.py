"""Heavy work of the server: explanations in threads, evaluations and training runs, all
through one :class:`~core.job_queue.JobQueue` (at most ``FUSION_MAX_JOBS`` at once).

Explanations: a page submits a job under a key (checkpoint hash, sample hash, method,
parameters) and polls it to draw a progress bar, or its place in line while it waits. When
the page's inputs change, it cancels the job of its previous key; when every browser session
that asked for a job has ended (tab closed, network gone) for :data:`ORPHAN_GRACE_S`, a
watcher cancels it. The job's ``threading.Event`` is handed to :func:`core.explain.explain`,
which stops before its next batch. Finished results stay cached for every session.

Evaluations run in the page's own script thread inside :func:`waiting_turn`; training runs
are processes started by :func:`core.train.runs.run_when_admitted` from a thread here.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
from streamlit.logger import get_logger

from core.errors import Cancelled
from core.job_queue import JobQueue
from core.settings import settings
from core.train.runs import RunState, list_runs, run_when_admitted

Compute = Callable[[Callable[[float], None], threading.Event], Any]

ORPHAN_GRACE_S = 3.0
"""How long a job may have no live browser session (a reload reconnects within it) before it is cancelled."""

WATCH_INTERVAL_S = 1.0

LOG = get_logger(__name__)  # Streamlit's logging setup: lines go to the server's log


@dataclass
class Job:
    """One explanation: its progress, result or error, and who is waiting for it.

    ``ahead`` is the number of jobs in line before it while it waits for a slot, ``None``
    once it runs.
    """

    key: Hashable
    owner: str
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: float = 0.0
    ahead: int | None = 0
    result: Any = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    sessions: set[str] = field(default_factory=set)
    orphaned_since: float | None = None

    @property
    def done(self) -> bool:
        return self.finished.is_set()


class JobRegistry:
    """Process-wide explanation jobs by key; keeps the last ``max_results`` finished ones.

    Args:
        queue: the server's admission queue (shared with evaluations and training).
        session_alive: whether a browser session id is still connected.
        max_results: finished jobs kept for other sessions.
        watch: start the thread that calls :meth:`cancel_orphans` every second (tests call it themselves).
    """

    def __init__(
        self, queue: JobQueue, session_alive: Callable[[str], bool], max_results: int = 64, watch: bool = True
    ):
        self.queue = queue
        self._session_alive = session_alive
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._max_results = max_results
        if watch:
            threading.Thread(target=self._watch, daemon=True, name="explanation-watcher").start()

    def submit(self, key: Hashable, compute: Compute, owner: str, session: str | None = None) -> Job:
        """The job for ``key``: the cached or running one (now also awaited by ``session``),
        else a new one that starts when the queue admits it."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.cancel.is_set() or job.error is not None:
                job = Job(key, owner)
                self._jobs[key] = job
                self._evict()
                threading.Thread(target=self._run, args=(job, compute), daemon=True, name="explanation").start()
            self._jobs.move_to_end(key)
            if session is not None:
                job.sessions.add(session)
            return job

    def cancel(self, key: Hashable) -> None:
        """Stop the job of ``key`` if it is still running or waiting (a finished result stays cached)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not job.done:
                job.cancel.set()
                del self._jobs[key]

    def _run(self, job: Job, compute: Compute) -> None:
        def progress(fraction: float) -> None:
            job.progress = float(fraction)

        def waiting(ahead: int) -> None:
            job.ahead = ahead

        try:
            with self.queue.slot("explain", job.owner, cancel=job.cancel, on_wait=waiting):
                job.ahead = None
                job.result = compute(progress, job.cancel)
        except Cancelled:
            pass
        except Exception as err:  # noqa: BLE001 - handed to the page, which shows it
            job.error = err
            with self._lock:
                if self._jobs.get(job.key) is job:
                    del self._jobs[job.key]
        finally:
            job.finished.set()

    def cancel_orphans(self, now: float | None = None) -> list[Hashable]:
        """Cancel unfinished jobs none of whose sessions has been alive for :data:`ORPHAN_GRACE_S`;
        returns their keys (the watcher thread calls this every second)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            unfinished = [job for job in self._jobs.values() if not job.done and job.sessions]
        orphans = []
        for job in unfinished:
            if any(self._session_alive(s) for s in list(job.sessions)):
                job.orphaned_since = None
            elif job.orphaned_since is None:
                job.orphaned_since = now
            elif now - job.orphaned_since >= ORPHAN_GRACE_S:
                orphans.append(job.key)
        for key in orphans:
            self.cancel(key)
            LOG.info("Cancelled an explanation: every browser session waiting for it has closed.")
        return orphans

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_S)
            self.cancel_orphans()

    def _evict(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.done]
        for key in finished[: max(0, len(finished) - self._max_results)]:
            del self._jobs[key]


def session_id() -> str | None:
    """This browser session's id (``None`` outside a Streamlit script run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def session_alive(session: str) -> bool:
    """Whether the Streamlit session ``session`` still has a connected browser."""
    from streamlit.runtime import Runtime

    return Runtime.exists() and Runtime.instance().is_active_session(session)


@st.cache_resource
def work_queue() -> JobQueue:
    """The server's one admission queue, ``FUSION_MAX_JOBS`` wide."""
    return JobQueue(settings().max_jobs)


@st.cache_resource
def job_registry() -> JobRegistry:
    return JobRegistry(work_queue(), session_alive)


def waiting_message(ahead: int) -> str:
    """What a page shows while its job waits for a slot."""
    jobs = "job" if ahead == 1 else "jobs"
    return (
        f"Waiting: {ahead} {jobs} ahead of yours. This server runs {work_queue().capacity} heavy "
        "job(s) at once (explanations, evaluations, training); yours starts when a slot frees up."
    )


def follow(job: Job, label: str) -> Any:
    """Draw ``job``'s place in line while it waits, then its progress until it is done; its
    result, or ``None`` when it failed (the error is shown) or was cancelled (a note says how
    to compute it again).

    Each update is also where Streamlit stops this run if the user changes an input.
    """
    from dashboard.errors import show_exception

    if not job.done:
        note, bar = st.empty(), None
        while not job.done:
            if job.ahead is not None:
                note.info(waiting_message(job.ahead), icon=":material/hourglass_top:")
            else:
                note.empty()
                bar = bar or st.progress(0.0, text=f"{label}…")
                bar.progress(min(job.progress, 1.0), text=f"{label}… {job.progress:.0%}")
            time.sleep(0.2)
        note.empty()
        if bar is not None:
            bar.empty()
    if job.error is not None:
        show_exception(job.error, label[:1].lower() + label[1:])
        return None
    if job.result is None:
        st.info("The computation was cancelled. Change a setting or reload to compute it again.")
    return job.result


@contextmanager
def waiting_turn(kind: str, owner: str, label: str = "") -> Iterator[None]:
    """Run the ``with`` block in this script thread once the queue admits it, showing the
    place in line meanwhile. The slot is given back however the block ends (a rerun too)."""
    queue = work_queue()
    ticket = queue.join(kind, owner, label)
    try:
        if not ticket.running:
            note = st.empty()
            # Each update is also where Streamlit stops this run if the user leaves or changes an input.
            while not queue.wait(ticket, timeout=0.5):
                note.info(waiting_message(queue.ahead(ticket)), icon=":material/hourglass_top:")
            note.empty()
        yield
    finally:
        queue.leave(ticket)


def queued_ahead(label: str) -> int | None:
    """Jobs in line before the waiting job called ``label`` (a training run's id), ``None`` if it is not waiting."""
    waiting = [t.label for t in work_queue().waiting()]
    return waiting.index(label) if label in waiting else None


def submit_training(run: RunState) -> None:
    """Start ``run`` (queued) when the queue admits it, in a background thread of this server.

    The run gets its place in line here, before the thread starts, so runs keep their order.
    """
    queue = work_queue()
    ticket = queue.join("train", run.owner, run.id)
    threading.Thread(
        target=run_when_admitted, args=(run.path, queue, ticket), daemon=True, name=f"train-{run.id}"
    ).start()


@st.cache_resource(show_spinner=False)
def resume_training_queue() -> int:
    """Once per server process: put runs left queued by an earlier server back in line, and
    let runs still running hold their slots. Returns how many were taken over."""
    runs = [r for r in reversed(list_runs()) if r.status in ("queued", "running")]
    for run in sorted(runs, key=lambda r: r.status != "running"):  # running ones first: they hold slots now
        submit_training(run)
    return len(runs)
