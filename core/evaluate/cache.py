"""The evaluation cache: one JSON file per (checkpoint weights, dataset content, split, options)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from core.atomic import write_text_atomic
from core.checkpoints import LoadedCheckpoint, read_card
from core.data import Dataset
from core.encoders.cache import EmbeddingCache
from core.evaluate.results import CheckpointEvaluation, EvaluationOptions, EvaluationReport
from core.evaluate.robustness import SplitInputs
from core.evaluate.run import _as_dataset, _unique_names, compare, evaluate_checkpoint
from core.settings import LOCAL_USER, settings


def evaluation_cache_key(sha256: str, dataset_fingerprint: str, split: str, options: EvaluationOptions) -> str:
    """Key of one cached evaluation: checkpoint weights, dataset content, split and options."""
    return hashlib.sha256(f"{sha256}|{dataset_fingerprint}|{split}|{options.key()}".encode()).hexdigest()[:32]


def cached_evaluation_path(
    sha256: str, dataset: Dataset, split: str, options: EvaluationOptions, cache_dir: str | Path | None = None
) -> Path:
    """Where the evaluation of the checkpoint with weights ``sha256`` is (or will be) cached."""
    root = Path(cache_dir) if cache_dir is not None else settings().evaluation_cache_dir
    return root / f"{evaluation_cache_key(sha256, dataset.fingerprint, split, options)}.json"


def _read_cached(path: Path) -> CheckpointEvaluation | None:
    """A cached result, or ``None`` when missing or unreadable (the corrupt file is removed)."""
    try:
        return CheckpointEvaluation.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        path.unlink(missing_ok=True)
        return None


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
    started_by: str = LOCAL_USER,
) -> EvaluationReport:
    """:func:`evaluate`, with each checkpoint's result cached as JSON under ``cache_dir``
    (default: the configured ``FUSION_CACHE_DIR/evaluations``), keyed by (checkpoint sha256, dataset
    fingerprint, split, options). Only misses are computed; pairwise tests are recomputed
    from the cached per-sample results (cheap and seeded, so identical).

    ``inputs`` lets several calls on the same split share decoded samples and corrupted
    embeddings (e.g. evaluating checkpoints one at a time to report progress). A result
    computed here records ``started_by``; a cached one keeps whoever computed it first."""
    started = time.perf_counter()
    options = options or EvaluationOptions()
    dataset = _as_dataset(dataset)
    if inputs is None:
        inputs = SplitInputs(dataset, split)
    elif inputs.dataset is not dataset or inputs.split != split:
        raise ValueError("inputs were prepared for another dataset or split")
    results = []
    for checkpoint in checkpoints:
        card = checkpoint.card if isinstance(checkpoint, LoadedCheckpoint) else read_card(checkpoint)
        path = cached_evaluation_path(card.sha256, dataset, split, options, cache_dir)
        result = _read_cached(path)
        if result is None:
            if progress is not None:
                progress(f"evaluating {card.name or checkpoint}")
            result = evaluate_checkpoint(
                checkpoint,
                dataset,
                split,
                options,
                inputs=inputs,
                embedding_cache=embedding_cache,
                device=device,
                started_by=started_by,
            )
            write_text_atomic(path, json.dumps(result.to_json()))
        results.append(result)
    _unique_names(results)
    return compare(results, options, time.perf_counter() - started)
