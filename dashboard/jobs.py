"""Explanations computed in background threads, cached by key and cancellable.

A page submits a job under a key (checkpoint hash, sample hash, method, parameters) and
polls it to draw a progress bar. When the page's inputs change, it cancels the job of
its previous key: the job's ``threading.Event`` is handed to :func:`core.explain.explain`,
which stops before its next batch. Finished results stay cached for every session.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core.errors import Cancelled

Compute = Callable[[Callable[[float], None], threading.Event], Any]


@dataclass
class Job:
    key: Hashable
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: float = 0.0
    result: Any = None
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.finished.is_set()


class JobRegistry:
    """Process-wide jobs by key; keeps the last ``max_results`` finished ones."""

    def __init__(self, max_results: int = 64):
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._max_results = max_results

    def submit(self, key: Hashable, compute: Compute) -> Job:
        """The job for ``key``: the cached or running one, else a new one started now."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not job.cancel.is_set() and job.error is None:
                self._jobs.move_to_end(key)
                return job
            job = Job(key)
            self._jobs[key] = job
            self._evict()
        threading.Thread(target=self._run, args=(job, compute), daemon=True, name="explanation").start()
        return job

    def cancel(self, key: Hashable) -> None:
        """Stop the job of ``key`` if it is still running (a finished result stays cached)."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and not job.done:
                job.cancel.set()
                del self._jobs[key]

    def _run(self, job: Job, compute: Compute) -> None:
        def progress(fraction: float) -> None:
            job.progress = float(fraction)

        try:
            job.result = compute(progress, job.cancel)
        except Cancelled:
            pass
        except Exception as err:  # noqa: BLE001 - handed to the page, which shows it
            job.error = err
            with self._lock:
                self._jobs.pop(job.key, None)
        finally:
            job.finished.set()

    def _evict(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.done]
        for key in finished[: max(0, len(finished) - self._max_results)]:
            del self._jobs[key]


@st.cache_resource
def job_registry() -> JobRegistry:
    return JobRegistry()


def follow(job: Job, label: str) -> Any:
    """Draw ``job``'s progress until it is done; its result, or ``None`` when it failed (the
    error is shown) or was cancelled (a note says how to compute it again).

    Each progress update is also where Streamlit stops this run if the user changes an input.
    """
    from dashboard.errors import show_exception

    if not job.done:
        bar = st.progress(0.0, text=f"{label}…")
        while not job.done:
            bar.progress(min(job.progress, 1.0), text=f"{label}… {job.progress:.0%}")
            time.sleep(0.2)
        bar.empty()
    if job.error is not None:
        show_exception(job.error, label[:1].lower() + label[1:])
        return None
    if job.result is None:
        st.info("The computation was cancelled. Change a setting or reload to compute it again.")
    return job.result
