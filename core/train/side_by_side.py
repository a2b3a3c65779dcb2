"""Independent trainings run side by side, one single-threaded process each, on a CPU.

The built-in encoders (stage 1) train independently of each other, and so do the fusion
heads (stage 2). Their networks are small: one training spread over two threads keeps
two cores about 60% busy (and slows down several-fold when another program wants a
core: each step waits for its slowest thread), while one process per training keeps
every core busy. Each process uses exactly one thread whatever the machine, so a
model's weights do not depend on what else was trained beside it or on how many cores
there were (PyTorch's CPU kernels sum in another order on another thread count).

Processes are forked (they inherit the dataset and embeddings without copying them), so
this only runs from a program's main thread; :func:`can_run_side_by_side` says when.
Events a task emits reach the caller's callback in this process, in arrival order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue as queue_module
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from typing import Any, TypeVar

import torch

from core.errors import FusionError, TrainingError
from core.parallel import cpu_count
from core.train.events import ProgressCallback

PR_SET_PDEATHSIG = 1
_EXHAUSTED = object()

T = TypeVar("T")
Task = Callable[[ProgressCallback], T]
"""A training: given a callback for its events, returns its result (picklable)."""


def can_run_side_by_side(device: torch.device, world: int) -> bool:
    """On a CPU, without torchrun, from the main thread (forking elsewhere could copy a held lock)."""
    return device.type == "cpu" and world == 1 and threading.current_thread() is threading.main_thread()


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a SIGKILLed training must not
    leave trainings running on without it); elsewhere nothing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _child(name: str, task: Task, channel: Any, parent: int) -> None:
    _die_with_parent(parent)
    torch.set_num_threads(1)
    try:
        result = task(lambda event: channel.put(("event", name, event)))
        channel.put(("done", name, result))
    except BaseException as err:  # noqa: BLE001 - every failure goes back to the parent
        if not isinstance(err, FusionError):
            err = TrainingError(f"{name}: {type(err).__name__}: {err}", details=traceback.format_exc())
        channel.put(("failed", name, err))


def run_side_by_side(
    tasks: dict[str, Task],
    callback: ProgressCallback | None,
    slots: int | None = None,
    on_result: Callable[[str, Any], None] | None = None,
    background: Iterator[Any] | None = None,
) -> dict[str, Any]:
    """Run ``tasks`` (name -> task), at most ``slots`` at once (default: one per core), in the
    given order; returns name -> result.

    ``on_result(name, result)`` is called here for each task that finishes while others still
    run, once the slot it freed has been given to the next task: the caller's work on it
    overlaps theirs and keeps the core that is no longer needed busy.

    ``background``: work for this process while a slot has nothing left to run (the last
    tasks' tail), one short step per ``next()``, until it is exhausted or every task is done.

    Raises:
        FusionError: the first task that failed (the others are stopped).
        Exception: whatever a ``background`` step raised (the tasks are stopped).
    """
    context = get_context("fork")
    channel = context.Queue()
    waiting = list(tasks.items())
    running: dict[str, Any] = {}
    results: dict[str, Any] = {}
    slots = max(1, slots or cpu_count())
    finished: list[str] = []
    try:
        while waiting or running:
            while waiting and len(running) < slots:
                name, task = waiting.pop(0)
                process = context.Process(target=_child, args=(name, task, channel, os.getpid()), name=f"train-{name}")
                process.start()
                running[name] = process
            while finished and running and on_result is not None:
                done = finished.pop(0)
                on_result(done, results[done])
            idle = background is not None and len(running) < slots  # nothing waits: it would be running
            try:
                kind, name, payload = channel.get_nowait() if idle else channel.get(timeout=1.0)
            except queue_module.Empty:
                kind = None
            if kind is None:
                if idle and next(background, _EXHAUSTED) is _EXHAUSTED:
                    background = None
                dead = [n for n, p in running.items() if not p.is_alive() and n not in results]
                if dead and channel.empty():
                    raise TrainingError(f"The training of {', '.join(dead)} stopped without a result.")
                continue
            if kind == "event":
                if callback is not None:
                    callback(payload)
                continue
            running.pop(name).join()
            if kind == "failed":
                raise payload
            results[name] = payload
            finished.append(name)
    finally:
        for process in running.values():
            process.terminate()
            process.join()
    return results
