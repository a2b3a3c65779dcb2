"""Cached loaders: one dataset, model and evaluation per process, shared by every session.

Datasets and checkpoint lists load without torch, which is imported (1.5 s) where a model is
first loaded: the first page shows the dataset before it. Models are cached with
``st.cache_resource`` and are read-only: nothing in the dashboard moves, trains, hooks or
otherwise mutates a cached model, because every user shares it.
Keys include what makes a cached value stale: the manifest's mtime for a dataset, the
weights' SHA-256 for a checkpoint, the folder's mtime for a checkpoint list.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import streamlit as st

from core import roots
from core.card import CheckpointInfo, list_checkpoints, read_card
from core.data import Dataset, load_dataset
from core.data.manifest import MANIFEST_NAMES
from core.errors import DatasetError
from core.evaluate.results import EvaluationOptions
from core.io import SAMPLE_RATE
from core.job_queue import JobQueue
from core.sample import DecodedSample
from core.settings import Limits, settings

if TYPE_CHECKING:  # imported where used: torch and the model, evaluation and explanation stacks take seconds
    import torch

    from core.checkpoints import LoadedCheckpoint
    from core.evaluate import EvaluationReport, SplitInputs
    from core.explain import Explanation
    from core.explain.attention_maps import AttentionMaps
    from core.inference import Prediction

T = TypeVar("T")

WARM_UP_SAMPLE = DecodedSample(
    image=np.zeros((32, 32, 3), np.uint8), text="warm up", audio=np.zeros(SAMPLE_RATE, np.float32)
)


WARM_UP_DELAY_S = 15.0
"""The warm-up waits this long: it would otherwise hold the interpreter while the first page is drawn."""


def _warm_up_shap(queue: JobQueue) -> None:
    time.sleep(WARM_UP_DELAY_S)
    while queue.running() or queue.waiting():  # compiling holds the interpreter for seconds: not during a job
        time.sleep(1.0)
    from core.explain.shap_explainer import warm_up

    warm_up()


@st.cache_resource(show_spinner=False)
def warm_explainers(_queue: JobQueue) -> threading.Thread:
    """Once per process, in the background: compile shap's partition-tree code (numba, a few
    seconds) while the user is still on another page, so their first SHAP explanation is not
    the one that pays for it. It waits until the server's heavy jobs (``_queue``) are done."""
    thread = threading.Thread(target=_warm_up_shap, args=(_queue,), daemon=True, name="shap-warm-up")
    thread.start()
    return thread


@st.cache_resource(show_spinner=False)
def compute_device() -> torch.device:
    """The device every model is loaded on (GPU when there is one; ``FUSION_DEVICE`` overrides)."""
    from core.device import pick_device

    return pick_device()


def keep_for_the_process(build: Callable[[], T], *, makes_cycles: bool = True) -> T:
    """``build()`` (a cached dataset, table or model: kept as long as the server runs), after which
    every object alive is moved out of the garbage collector's full passes (``gc.freeze``).

    A loaded dataset of 30,000 rows is millions of objects; every full pass walked them all and
    paused a page change by 0.5-0.8 s. Frozen objects are still freed when nothing refers to
    them (reference counting); only reference cycles among them would stay, so garbage is
    collected first: before the build, and after it too when the build ``makes_cycles`` (a
    table's pandas and torch work leaves a few hundred objects in cycles). A dataset load makes
    none (tested), and a pass after it would walk every object it made: 0.3-0.6 s of the first
    page at 100,000 rows.
    """
    gc.collect()
    value = build()
    if makes_cycles:
        gc.collect()
    gc.freeze()
    return value


def _manifest_mtime(root: Path) -> float:
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return (root / name).stat().st_mtime
    return 0.0


@st.cache_resource(show_spinner="Loading and validating the dataset…", max_entries=4)
def _dataset(root: str, manifest_mtime: float, limits: Limits) -> Dataset | DatasetError:
    # Rows with problems are left out and listed (``Dataset.skipped``, shown on the Overview),
    # as ``train --skip-invalid`` does: a user can look at the rest of their data. A problem with
    # the manifest itself, or no valid row at all, still refuses the dataset. The error is cached
    # too: re-validating a large broken dataset on every click is slow.
    try:
        return keep_for_the_process(lambda: load_dataset(root, limits=limits, skip_invalid=True), makes_cycles=False)
    except DatasetError as err:
        return err


def dataset_or_error(root: str | Path) -> Dataset | DatasetError:
    """The loaded dataset (its invalid rows left out, see ``Dataset.skipped``), or the
    :class:`DatasetError` listing every problem when none of it is usable (cached until the
    manifest or the decoding limits change)."""
    root = Path(root).expanduser().resolve()
    return _dataset(str(root), _manifest_mtime(root), settings().limits)


@st.cache_data(show_spinner=False, ttl=20)
def _folder_choices(data_roots: tuple[Path, ...], checkpoint_roots: tuple[Path, ...]) -> tuple[list[str], list[str]]:
    return [str(p) for p in roots.dataset_folders(data_roots)], [str(p) for p in roots.checkpoint_folders(checkpoint_roots)]


def folder_choices() -> tuple[list[str], list[str]]:
    """The dataset folders and the checkpoint folders inside the configured roots (resolved
    paths). Searching the roots reads many folders, so the lists are shared by every session
    for 20 s (a new folder shows up within that)."""
    config = settings()
    return _folder_choices(config.data_roots, config.checkpoint_roots)


@st.cache_data(show_spinner=False, ttl=60)
def _checkpoint_infos(root: str, folder_mtime: float) -> list[CheckpointInfo]:
    return list_checkpoints(root)


def checkpoint_infos(root: str | Path) -> list[CheckpointInfo]:
    """Checkpoints under ``root`` (unreadable ones carry ``error``); new folders show up at once."""
    root = Path(root).expanduser()
    return _checkpoint_infos(str(root), root.stat().st_mtime if root.is_dir() else 0.0)


def forget_checkpoint_list() -> None:
    """Drop the cached checkpoint lists (after a training run wrote new checkpoints)."""
    _checkpoint_infos.clear()


@st.cache_resource(show_spinner=False)
def _loaded_models() -> dict[str, str]:
    """Path -> name of every model loaded in this process (for the sidebar's cache status)."""
    return {}


@st.cache_resource(show_spinner="Loading the model…", max_entries=32)
def _checkpoint(path: str, sha256: str, device: str) -> LoadedCheckpoint:
    from core.checkpoints import load_checkpoint
    from core.inference import predict_proba

    loaded = load_checkpoint(path, device=device)
    # One throw-away prediction pays the one-time costs (kernel selection, lazy imports,
    # first-call allocations) here, so the user's first prediction is fast.
    predict_proba(loaded.model, [WARM_UP_SAMPLE])
    _loaded_models()[path] = loaded.name
    return loaded


def load_model(path: str | Path) -> LoadedCheckpoint:
    """The checkpoint at ``path``, loaded once per process (reloaded only if its weights change).

    Raises:
        CheckpointError: the checkpoint cannot be read or its weights do not match its card.
    """
    return _checkpoint(str(Path(path).resolve()), read_card(path).sha256, str(compute_device()))


def load_models(infos: list[CheckpointInfo]) -> dict[str, tuple[CheckpointInfo, LoadedCheckpoint]]:
    """Name -> (info, loaded checkpoint) of ``infos``; one that fails to load gets an error box
    (the others are still returned)."""
    from dashboard.errors import show_exception

    models = {}
    for info in infos:
        try:
            models[info.name] = (info, load_model(info.path))
        except Exception as err:  # noqa: BLE001 - one unreadable checkpoint must not hide the others
            show_exception(err, f"loading {info.name}")
    return models


def loaded_model_count() -> int:
    return len(_loaded_models())


def cached_evaluation_count() -> int:
    """Evaluations stored in core's on-disk evaluation cache."""
    folder = settings().evaluation_cache_dir
    return sum(1 for _ in folder.glob("*.json")) if folder.is_dir() else 0


def pending_evaluations(
    paths: list[str], dataset: Dataset, split: str, options: EvaluationOptions, task: str
) -> dict[str, str]:
    """Path -> name of the checkpoints whose evaluation is not yet in core's evaluation cache."""
    from core.evaluate import cached_evaluation_path

    pending = {}
    for path in paths:
        card = read_card(path)
        if not cached_evaluation_path(card.sha256, dataset, split, options, task=task).is_file():
            pending[path] = card.name or Path(path).name
    return pending


def evaluate_to_disk_cache(
    path: str, inputs: SplitInputs, options: EvaluationOptions, task: str, started_by: str
) -> None:
    """Evaluate one checkpoint into core's on-disk evaluation cache (lets a page show progress
    checkpoint by checkpoint before :func:`evaluation_report` bundles the cached results).
    Calls sharing ``inputs`` decode the split and embed its corruptions once; the result
    records ``started_by``."""
    from core.evaluate import evaluate_cached

    evaluate_cached(
        [load_model(path)], inputs.dataset, inputs.split, options, inputs=inputs, task=task, started_by=started_by
    )


@st.cache_data(show_spinner=False, max_entries=16)
def evaluation_report(
    paths: tuple[str, ...],
    weights: tuple[str, ...],
    dataset_root: str,
    fingerprint: str,
    split: str,
    options_json: str,
    task: str,
) -> EvaluationReport:
    """Evaluate checkpoints on a split (core caches each on disk; this caches the bundle in memory).

    ``weights`` (the checkpoints' SHA-256) and ``fingerprint`` are part of the key so a
    retrained checkpoint or an edited dataset is evaluated afresh.
    """
    dataset = dataset_or_error(dataset_root)
    if isinstance(dataset, DatasetError):
        raise dataset
    from core.evaluate import evaluate_cached

    options = EvaluationOptions.from_json(json.loads(options_json))
    return evaluate_cached([load_model(p) for p in paths], dataset, split, options, task=task)


@st.cache_data(show_spinner=False, max_entries=512)
def prediction(path: str, weights: str, sample_key: str, _sample: DecodedSample) -> Prediction | None:
    """One checkpoint's prediction for one sample (:func:`core.inference.predict`), cached by
    the checkpoint's weights hash and the sample's content hash."""
    from core.inference import predict

    return predict(load_model(path), _sample)


@st.cache_data(show_spinner=False, max_entries=512)
def modality_explanation(
    path: str, weights: str, sample_key: str, _sample: DecodedSample, task: str | None = None
) -> Explanation:
    """Modality Shapley values and interactions of one checkpoint on one sample.

    Cheap (2^M coalitions on the fusion head, the sample encoded once). Keyed by the
    checkpoint's weights hash and the sample's content hash.
    """
    from core.explain import explain

    return explain(load_model(path), _sample, "modality", task=task)["modality"]


@st.cache_data(show_spinner="Averaging attention over the test split…", max_entries=16)
def split_attention_maps(path: str, weights: str, dataset_root: str, fingerprint: str) -> AttentionMaps:
    """Attention of an attention-fusion checkpoint averaged over the dataset's test split
    (from the embedding cache), keyed by the checkpoint's weights and the dataset's content."""
    dataset = dataset_or_error(dataset_root)
    if isinstance(dataset, DatasetError):
        raise dataset
    from core.encoders.cache import EmbeddingCache
    from core.explain.attention_maps import split_attention

    return split_attention(load_model(path).model, dataset, "test", cache=EmbeddingCache())
