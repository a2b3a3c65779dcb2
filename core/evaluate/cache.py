"""The evaluation cache: one JSON file per (checkpoint weights, dataset content, split, options)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from core.atomic import write_text_atomic
from core.card import read_card
from core.checkpoints import LoadedCheckpoint
from core.data import Dataset
from core.encoders.cache import EmbeddingCache
from core.evaluate.results import CheckpointEvaluation, EvaluationOptions, EvaluationReport
from core.evaluate.robustness import SplitInputs
from core.evaluate.run import _as_dataset, evaluate
from core.serialization import read_cached
from core.settings import LOCAL_USER, settings


def evaluation_cache_key(
    sha256: str, dataset_fingerprint: str, split: str, options: EvaluationOptions, task: str | None = None
) -> str:
    """Key of one cached evaluation: checkpoint weights, dataset content, split, options and task."""
    text = f"{sha256}|{dataset_fingerprint}|{split}|{options.key()}" + (f"|{task}" if task else "")
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached_evaluation_path(
    sha256: str,
    dataset: Dataset,
    split: str,
    options: EvaluationOptions,
    cache_dir: str | Path | None = None,
    task: str | None = None,
) -> Path:
    """Where the evaluation of the checkpoint with weights ``sha256`` is (or will be) cached."""
    root = Path(cache_dir) if cache_dir is not None else settings().evaluation_cache_dir
    return root / f"{evaluation_cache_key(sha256, dataset.fingerprint, split, options, task)}.json"


def _read_cached(path: Path) -> CheckpointEvaluation | None:
    """A cached result, or ``None`` when missing or unreadable (the corrupt file is removed)."""
    return read_cached(CheckpointEvaluation, path)


def evaluate_cached(
    checkpoints: Sequence[LoadedCheckpoint | str | Path],
    dataset: Dataset | str | Path,
    split: str = "test",
    options: EvaluationOptions | None = None,
    *,
    cache_dir: str | Path | None = None,
    embedding_cache: EmbeddingCache | bool = True,
    device: torch.device | str | None = None,
    progress: Callable[[str], None] | None = None,
    inputs: SplitInputs | None = None,
    task: str | None = None,
    started_by: str = LOCAL_USER,
) -> EvaluationReport:
    """:func:`evaluate`, with each checkpoint's result cached as JSON under ``cache_dir``
    (default: the configured ``FUSION_CACHE_DIR/evaluations``), keyed by (checkpoint sha256, dataset
    fingerprint, split, options). Only misses are computed; pairwise tests are recomputed
    from the cached per-sample results (cheap and seeded, so identical).

    ``inputs`` lets several calls on the same split share decoded samples and corrupted
    embeddings (e.g. evaluating checkpoints one at a time to report progress). A result
    computed here records ``started_by``; a cached one keeps whoever computed it first."""
    options = options or EvaluationOptions()
    dataset = _as_dataset(dataset)

    def path(checkpoint: LoadedCheckpoint | str | Path) -> Path:
        card = checkpoint.card if isinstance(checkpoint, LoadedCheckpoint) else read_card(checkpoint)
        return cached_evaluation_path(card.sha256, dataset, split, options, cache_dir, task)

    return evaluate(
        checkpoints,
        dataset,
        split,
        options,
        embedding_cache=embedding_cache,
        device=device,
        progress=progress,
        task=task,
        started_by=started_by,
        inputs=inputs,
        reuse=lambda checkpoint: _read_cached(path(checkpoint)),
        keep=lambda checkpoint, result: write_text_atomic(path(checkpoint), json.dumps(result.to_json())),
    )
