"""Worker processes for decoding and preprocessing: how many, how they start, and the loader
that runs them ahead of the model.

Decoding files and preparing encoder inputs is Python-heavy CPU work (PIL, soundfile,
librosa, tokenisers) that threads cannot spread over cores, so batch jobs (validation,
embedding, stage-1 training, robustness sweeps) do it in worker processes:
``FUSION_WORKERS`` of them (default: one per core this process may use; 0: here).
Results come back in order, so nothing computed depends on how many workers there were (where
workers also run an encoder, :func:`core.inference.encode` on a CPU, up to float rounding:
each runs it on one thread).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

from core.errors import InputError
from core.settings import settings

T = TypeVar("T")

PRELOAD = ["torch", "numpy", "PIL.Image", "soundfile", "librosa", "core.io"]
"""Imported once by the fork server, so each worker it forks starts with them loaded."""


def cpu_count() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(items: int, per_worker: int = 1, per_core: int = 1) -> int:
    """Workers for a job of ``items``: ``FUSION_WORKERS`` (default ``per_core`` per core), but none
    when the job is too small to pay for starting them (fewer than ``per_worker`` items each)."""
    configured = settings().workers
    workers = cpu_count() * per_core if configured is None else configured
    if workers <= 0 or items < 2 * per_worker:
        return 0
    return max(1, min(workers, items // per_worker))


IN_PROCESS = frozenset({"text"})
"""Modalities prepared in the process itself unless workers are asked for: texts come from the
manifest and tokenise faster than a worker's results come back (measured on 846 texts, 2 cores:
8,200 texts/s encoded in process, 540 with two workers)."""


def workers_for(modality: str, workers: int | None = None) -> int | None:
    """``workers`` for preparing ``modality``'s inputs: 0 for :data:`IN_PROCESS` ones when not given."""
    return 0 if workers is None and modality in IN_PROCESS else workers


def start_method() -> str:
    """How workers start: ``fork`` from a program's main thread (instant, nothing to pickle);
    ``forkserver`` from any other thread, e.g. a dashboard request, where the process has threads
    we do not own and a fork could copy a lock one of them holds."""
    return "fork" if threading.current_thread() is threading.main_thread() else "forkserver"


def _context():
    context = get_context(start_method())
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(PRELOAD)
    return context


@contextlib.contextmanager
def _launching(context) -> Iterator[None]:
    """Around starting processes with ``context``: a fork server and the processes it starts
    run the main script again (as ``__mp_main__``) before their work, and in a Streamlit
    request the "main script" is the page being drawn (Streamlit puts it in
    ``sys.modules["__main__"]`` while it runs), so each worker would draw the page, load the
    dataset and start workers of its own. While processes start, ``__main__`` is a blank
    module: they run only what they were sent (module-level functions of ``core``)."""
    if context.get_start_method() == "fork":
        yield
        return
    with _MAIN_SWAP:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


_MAIN_SWAP = threading.Lock()


def process_map(function: Callable[[Any], T], items: Sequence[Any], workers: int, chunksize: int) -> list[T]:
    """``[function(item) for item in items]`` in ``workers`` processes (``function`` must be a
    module-level function; its items and results are pickled)."""
    if workers <= 0:
        return [function(item) for item in items]
    context = _context()
    # gc.enable: a process forked while a dataset was being read inherits a disabled collector.
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=gc.enable) as pool:
        with _launching(context):  # map submits every chunk now, so every process starts here
            results = pool.map(function, items, chunksize=chunksize)
        return list(results)


class _Failed:
    """A user-caused failure in a worker, re-raised by the consumer (not wrapped in a traceback)."""

    def __init__(self, error: InputError):
        self.error = error


class _Prepared:
    """The map-style dataset a DataLoader's workers index (no torch base class needed)."""

    def __init__(self, values: Sequence[Any], prepare: Callable[[Any], Any]):
        self.values, self.prepare = values, prepare

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.prepare(self.values[index])
        except InputError as err:  # a file changed since validation: the user's, reported as such
            return _Failed(err)


def _as_list(items: list[Any]) -> list[Any]:
    return items


class _Finish:
    """A worker's last step on its chunk: ``finish(items)``, unless some item failed (the
    consumer then re-raises that failure from the list)."""

    def __init__(self, finish: Callable[[list[Any]], Any]):
        self.finish = finish

    def __call__(self, items: list[Any]) -> Any:
        if any(isinstance(item, _Failed) for item in items):
            return items
        return self.finish(items)


def prepared_chunks(
    values: Sequence[Any],
    prepare: Callable[[Any], Any],
    chunk: int,
    workers: int | None = None,
    finish: Callable[[list[Any]], Any] | None = None,
) -> Iterator[Any]:
    """``[prepare(v) for v in values]``, ``chunk`` items at a time and in order; with
    ``finish``, ``finish(chunk)`` of each such list instead (e.g. a model run on it).

    With workers (``None``: :func:`worker_count`), a :class:`torch.utils.data.DataLoader` runs
    ``prepare`` (and ``finish``) in worker processes that keep up to two chunks each ready
    ahead of the consumer, so preparation overlaps whatever the caller does with each chunk
    (running a model). ``values[i]`` may decode lazily (it then runs in the worker too).

    Raises:
        InputError: ``prepare`` raised it for some value (re-raised as it was).
    """
    chunk = max(1, int(chunk))
    workers = worker_count(len(values), chunk) if workers is None else workers
    if workers <= 0:
        for start in range(0, len(values), chunk):
            items = [prepare(v) for v in values[start : start + chunk]]
            yield items if finish is None else finish(items)
        return
    from torch.utils.data import DataLoader  # here: validation uses this module without torch

    context = _context()
    loader = DataLoader(
        _Prepared(values, prepare),
        batch_size=chunk,
        num_workers=workers,
        collate_fn=_as_list if finish is None else _Finish(finish),
        multiprocessing_context=context,
        prefetch_factor=2,
    )
    with _launching(context):
        batches = iter(loader)  # the workers start here
    for items in batches:
        if isinstance(items, list):
            for item in items:
                if isinstance(item, _Failed):
                    raise item.error
        yield items
