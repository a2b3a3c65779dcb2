"""Evaluating checkpoints on a dataset split and comparing them side by side."""

from __future__ import annotations

import datetime as _dt
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.checkpoints import LoadedCheckpoint, load_checkpoint, versions
from core.data import Dataset, load_dataset
from core.device import describe_device, pick_device
from core.embeddings import classify_embedded, embed_records
from core.encoders.cache import EmbeddingCache
from core.errors import EvaluationError
from core.evaluate.analysis import analyse
from core.evaluate.bootstrap import bootstrap_intervals, paired_test
from core.evaluate.cost import measure_cost
from core.evaluate.curves import compute_curves
from core.evaluate.interactions import coalition_values, emap_predictions
from core.evaluate.metrics import compute_metrics
from core.evaluate.results import CheckpointEvaluation, EvaluationOptions, EvaluationReport, SampleResult
from core.evaluate.robustness import (
    CORRUPTIONS,
    SplitInputs,
    corruption_sweeps,
    missing_modality_table,
    modality_reliance,
)
from core.evaluate.verdict import verdict
from core.settings import LOCAL_USER


def _as_dataset(dataset: Dataset | str | Path) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset)


def _as_embedding_cache(embedding_cache: EmbeddingCache | bool) -> EmbeddingCache | None:
    if isinstance(embedding_cache, EmbeddingCache):
        return embedding_cache
    return EmbeddingCache() if embedding_cache else None


def evaluate_checkpoint(
    checkpoint: LoadedCheckpoint | str | Path,
    dataset: Dataset | str | Path,
    split: str = "test",
    options: EvaluationOptions | None = None,
    *,
    inputs: SplitInputs | None = None,
    embedding_cache: EmbeddingCache | bool = True,
    device: torch.device | str | None = None,
    started_by: str = LOCAL_USER,
) -> CheckpointEvaluation:
    """Evaluate one checkpoint on one split of a dataset.

    Args:
        checkpoint: a loaded checkpoint or its folder.
        dataset: a loaded dataset or its folder.
        split: ``train``, ``val`` or ``test``.
        options: what to compute (default :class:`EvaluationOptions`).
        inputs: decoded samples and corrupted embeddings shared with other checkpoints
            evaluated on the same split (see :func:`evaluate`).
        embedding_cache: an :class:`EmbeddingCache`, ``True`` for the default one, ``False`` for none.
        device: where to run (default :func:`core.device.pick_device`).
        started_by: who asked for it (recorded in the result).

    Raises:
        EvaluationError: an empty split, or no row whose label is one of the checkpoint's classes.
    """
    started = time.perf_counter()
    options = options or EvaluationOptions()
    unknown = sorted(set(options.corruptions) - set(CORRUPTIONS))
    if unknown:
        raise EvaluationError(f"Unknown corruption(s) {', '.join(unknown)}; choose from {', '.join(CORRUPTIONS)}.")
    dataset = _as_dataset(dataset)
    loaded = (
        checkpoint
        if isinstance(checkpoint, LoadedCheckpoint)
        else load_checkpoint(checkpoint, device=pick_device(device))
    )
    model = loaded.model
    inputs = (
        inputs
        if inputs is not None and inputs.dataset is dataset and inputs.split == split
        else SplitInputs(dataset, split)
    )
    if not inputs.records:
        raise EvaluationError(f"Split {split!r} of {dataset.root} is empty (sizes: {dataset.split_sizes()}).")
    embedded = embed_records(model, inputs.records, cache=_as_embedding_cache(embedding_cache), limits=dataset.limits)
    labels = embedded.labels.numpy()
    rows = np.flatnonzero(labels >= 0).tolist()
    excluded = Counter(inputs.records[i].label for i in np.flatnonzero(labels < 0))
    notes = []
    if excluded:
        notes.append(
            f"{sum(excluded.values())} row(s) left out: their label is not one of the checkpoint's classes "
            f"({', '.join(f'{k!r}: {v}' for k, v in sorted(excluded.items())[:10])})."
        )
    trained_on = loaded.card.dataset.fingerprint
    if trained_on and trained_on != dataset.fingerprint:
        notes.append(
            "The checkpoint was trained on another version of this dataset (its card's fingerprint differs): "
            "these metrics may not match the card's, and rows may overlap its training data."
        )
    if not rows:
        raise EvaluationError(
            f"None of the {len(labels)} rows of split {split!r} has a label the checkpoint {loaded.name} knows "
            f"(it knows {', '.join(model.classes[:10])}{', ...' if len(model.classes) > 10 else ''})."
        )
    data = embedded.subset(rows)
    y = data.labels.numpy()
    proba = classify_embedded(model, data)
    metrics = compute_metrics(y, proba, model.classes, ece_bins=options.ece_bins, top_k=options.top_k)
    pred = proba.argmax(axis=1)
    samples = [
        SampleResult(
            id=data.ids[j],
            label=model.classes[y[j]],
            prediction=model.classes[pred[j]],
            probabilities=np.round(proba[j].astype(float), 6).tolist(),
            correct=bool(pred[j] == y[j]),
            present=[m for k, m in enumerate(model.modalities) if data.present[j, k]],
            extras=dict(inputs.records[i].extras),
        )
        for j, i in enumerate(rows)
    ]
    analysis = None
    if options.analysis:
        for sample, values in zip(samples, coalition_values(model, data), strict=True):
            sample.coalitions = np.round(values, 6).tolist()
        emap_rows, emap_classes = emap_predictions(model, data, options)
        for j, c in zip(emap_rows, emap_classes, strict=True):
            samples[j].emap_prediction = model.classes[c]
        analysis = analyse(samples, model.modalities, model.classes, options)
    robust = options.robustness
    return CheckpointEvaluation(
        name=loaded.name,
        path=str(loaded.path),
        sha256=loaded.card.sha256,
        fusion=loaded.card.fusion,
        kind=loaded.card.kind,
        modalities=list(model.modalities),
        classes=list(model.classes),
        dataset=str(dataset.root),
        dataset_fingerprint=dataset.fingerprint,
        split=split,
        n_rows=len(labels),
        n_excluded=int(sum(excluded.values())),
        excluded_labels=dict(excluded),
        metrics=metrics,
        intervals=bootstrap_intervals(
            y, proba, metrics, resamples=options.bootstrap, seed=options.seed, ece_bins=options.ece_bins
        ),
        curves=compute_curves(y, proba, model.classes, metrics, options.ece_bins),
        samples=samples,
        missing_modality=missing_modality_table(model, data, options) if robust else [],
        corruptions=corruption_sweeps(model, data, inputs, rows, options) if robust else [],
        reliance=modality_reliance(model, data, options) if robust else [],
        cost=measure_cost(model, [inputs.decoded[i] for i in rows], data, options) if options.cost else None,
        options=options,
        notes=metrics.notes + notes,
        seconds=time.perf_counter() - started,
        analysis=analysis,
        started_by=started_by,
    )


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produce an evaluation, recorded in reports."""
    import plotly
    import scipy
    import sklearn

    return {**versions(), "scikit-learn": sklearn.__version__, "scipy": scipy.__version__, "plotly": plotly.__version__}


def compare(
    results: Sequence[CheckpointEvaluation], options: EvaluationOptions | None = None, seconds: float = 0.0
) -> EvaluationReport:
    """Bundle per-checkpoint results of one split into a report with every pairwise test and the verdict."""
    options = options or EvaluationOptions()
    if not results:
        raise EvaluationError("No checkpoint to compare.")
    first = results[0]
    if any((r.dataset_fingerprint, r.split) != (first.dataset_fingerprint, first.split) for r in results):
        raise EvaluationError("Results compared side by side must come from the same dataset and split.")
    pairwise = [
        paired_test(a, b, resamples=options.bootstrap, seed=options.seed) for a, b in itertools.combinations(results, 2)
    ]
    return EvaluationReport(
        dataset=first.dataset,
        dataset_fingerprint=first.dataset_fingerprint,
        split=first.split,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        device=describe_device(pick_device()),
        versions=library_versions(),
        checkpoints=list(results),
        pairwise=pairwise,
        seconds=seconds,
        verdict=verdict(results, pairwise, options.alpha),
    )


def _unique_names(results: list[CheckpointEvaluation]) -> None:
    # Two folders may hold checkpoints with the same card name; figures key on names.
    seen: Counter[str] = Counter(r.name for r in results)
    for r in results:
        if seen[r.name] > 1:
            r.name = f"{r.name} ({Path(r.path).parent.name}/{Path(r.path).name})"


def evaluate(
    checkpoints: Sequence[LoadedCheckpoint | str | Path],
    dataset: Dataset | str | Path,
    split: str = "test",
    options: EvaluationOptions | None = None,
    *,
    embedding_cache: EmbeddingCache | bool = True,
    device: torch.device | str | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Evaluate several checkpoints on one split, sharing decoded inputs and corrupted
    embeddings between them, and test every pair. No evaluation cache: see :func:`evaluate_cached`."""
    started = time.perf_counter()
    options = options or EvaluationOptions()
    dataset = _as_dataset(dataset)
    inputs = SplitInputs(dataset, split)
    results = []
    for checkpoint in checkpoints:
        if progress is not None:
            progress(f"evaluating {getattr(checkpoint, 'name', checkpoint)}")
        results.append(
            evaluate_checkpoint(
                checkpoint, dataset, split, options, inputs=inputs, embedding_cache=embedding_cache, device=device
            )
        )
    _unique_names(results)
    return compare(results, options, time.perf_counter() - started)


def disagreements(results: EvaluationReport | Sequence[CheckpointEvaluation]) -> list[dict[str, Any]]:
    """Rows that the checkpoints predict differently, in the first result's order.

    Each item: ``{"id", "label", "predictions": {name: class}, "correct": {name: bool}, "extras"}``.
    """
    results = results.checkpoints if isinstance(results, EvaluationReport) else list(results)
    by_id = [{s.id: s for s in r.samples} for r in results]
    out = []
    for sample in results[0].samples if results else []:
        rows = {r.name: lookup[sample.id] for r, lookup in zip(results, by_id, strict=True) if sample.id in lookup}
        if len({row.prediction for row in rows.values()}) > 1:
            out.append(
                {
                    "id": sample.id,
                    "label": sample.label,
                    "predictions": {name: row.prediction for name, row in rows.items()},
                    "correct": {name: row.correct for name, row in rows.items()},
                    "extras": sample.extras,
                }
            )
    return out


def incompatibility(loaded: LoadedCheckpoint, dataset: Dataset) -> str | None:
    """Why a checkpoint cannot be evaluated on a dataset (other classes, no shared modality), or ``None``."""
    model = loaded.model
    if set(dataset.classes) != set(model.classes):
        missing = sorted(set(dataset.classes) - set(model.classes))
        extra = sorted(set(model.classes) - set(dataset.classes))
        parts = []
        if missing:
            parts.append(f"it does not know the dataset's classes {', '.join(missing[:8])}")
        if extra:
            parts.append(f"it predicts classes the dataset lacks ({', '.join(extra[:8])})")
        return f"{loaded.name} was trained on other classes: " + "; ".join(parts) + "."
    if not set(model.modalities) & set(dataset.modalities()):
        return (
            f"{loaded.name} uses {', '.join(model.modalities)}, none of which the dataset has "
            f"({', '.join(dataset.modalities())})."
        )
    return None
