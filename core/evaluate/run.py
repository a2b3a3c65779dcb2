"""Evaluating checkpoints on a dataset split and comparing them side by side."""

from __future__ import annotations

import datetime as _dt
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.card import WEIGHTS_FILE
from core.checkpoints import LoadedCheckpoint, load_checkpoint, versions
from core.data import Dataset, load_dataset
from core.device import describe_device, pick_device
from core.embeddings import embed_records
from core.encoders.cache import EmbeddingCache
from core.errors import EvaluationError
from core.evaluate.analysis import analyse
from core.evaluate.bootstrap import paired_test
from core.evaluate.cost import measure_cost
from core.evaluate.interactions import coalition_values, emap_predictions
from core.evaluate.results import CheckpointEvaluation, EvaluationOptions, EvaluationReport, SampleResult
from core.evaluate.robustness import (
    CORRUPTIONS,
    SplitInputs,
    corruption_sweeps,
    missing_modality_table,
    modality_reliance,
)
from core.evaluate.scoring import Scorer
from core.evaluate.verdict import verdict
from core.inference import on_projections
from core.parallel import start_method
from core.settings import LOCAL_USER
from core.tasks import PRIMARY


def _as_dataset(dataset: Dataset | str | Path) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else load_dataset(dataset)


def _as_embedding_cache(embedding_cache: EmbeddingCache | bool) -> EmbeddingCache | None:
    if isinstance(embedding_cache, EmbeddingCache):
        return embedding_cache
    return EmbeddingCache() if embedding_cache else None


class _Sweeps:
    """The corruption sweeps of one checkpoint, beside the rest of its evaluation where that is safe.

    The sweeps mostly wait for worker processes to decode, corrupt and encode inputs. Where those
    workers come from a fork server (the calling thread is not the main thread, e.g. a dashboard
    request), nothing forks this process, so the sweeps run in a helper thread while the calling
    thread computes the analyses. From a program's main thread the workers are forked, which must
    not happen while another of our threads runs: there the sweeps run when :meth:`result` asks.
    """

    def __init__(self, sweep: Callable[[], list] | None):
        self._sweep = sweep  # None: robustness is off, nothing to sweep
        self._future = None
        if sweep is not None and start_method() == "forkserver":
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corruption-sweeps")
            self._future = pool.submit(sweep)
            pool.shutdown(wait=False)

    def settle(self) -> None:
        """Wait for sweeps under way (the evaluation failed: their result is not wanted)."""
        if self._future is not None:
            wait([self._future])

    def result(self) -> list:
        """The sweeps (waiting for them, or computing them now); their error if they failed."""
        if self._future is not None:
            return self._future.result()
        return self._sweep() if self._sweep is not None else []


def evaluate_checkpoint(
    checkpoint: LoadedCheckpoint | str | Path,
    dataset: Dataset | str | Path,
    split: str = "test",
    options: EvaluationOptions | None = None,
    *,
    inputs: SplitInputs | None = None,
    embedding_cache: EmbeddingCache | bool = True,
    device: torch.device | str | None = None,
    task_name: str | None = None,
    started_by: str = LOCAL_USER,
) -> CheckpointEvaluation:
    """Evaluate one checkpoint on one split of a dataset, for one of its tasks.

    Args:
        checkpoint: a loaded checkpoint or its folder.
        dataset: a loaded dataset or its folder.
        split: ``train``, ``val`` or ``test``.
        options: what to compute (default :class:`EvaluationOptions`).
        inputs: decoded samples and corrupted embeddings shared with other checkpoints
            evaluated on the same split (see :func:`evaluate`).
        embedding_cache: an :class:`EmbeddingCache`, ``True`` for the default one, ``False`` for none.
        device: where to run (default :func:`core.device.pick_device`).
        task_name: the task to evaluate (default: the checkpoint's primary task).
        started_by: who asked for it (recorded in the result).

    Raises:
        EvaluationError: an empty split, a task the checkpoint does not predict, or no row
            whose label is one of the task's classes.
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
    store = _as_embedding_cache(embedding_cache)
    inputs = (
        inputs
        if inputs is not None and inputs.dataset is dataset and inputs.split == split
        else SplitInputs(dataset, split, store)
    )
    if not inputs.records:
        raise EvaluationError(f"Split {split!r} of {dataset.root} is empty (sizes: {dataset.split_sizes()}).")
    try:
        task = model.task(task_name)
    except KeyError:
        raise EvaluationError(
            f"{loaded.name} does not predict the task {task_name!r} (it predicts {', '.join(t.name for t in model.tasks)})."
        ) from None
    embedded = embed_records(model, inputs.records, cache=store, limits=dataset.limits, shard=inputs.shard)
    targets = dataset.targets(inputs.records, task.name) if task.name in {t.name for t in dataset.tasks} else [None] * len(inputs.records)
    y_all, known = task.encode(targets)
    rows = np.flatnonzero(known).tolist()
    unlabelled = sum(t is None for t in targets)
    excluded = Counter(task.label_text(t) for t, k in zip(targets, known, strict=True) if t is not None and not k)
    notes = []
    if unlabelled:
        notes.append(f"{unlabelled} row(s) have no label for the task {task.name!r} and are not scored.")
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
            f"None of the {len(targets)} rows of split {split!r} has a label the checkpoint {loaded.name} knows "
            f"for the task {task.name!r} (it knows {', '.join(task.classes[:10])}{', ...' if len(task.classes) > 10 else ''})."
        )
    data = embedded.subset(rows)
    scorer = Scorer(task, y_all[rows], options, loaded.card.thresholds.get(task.name, {}))
    # The analyses below classify the same rows many times: the fusion's projections are computed once.
    head, projections = on_projections(model, data.embeddings)
    projected = data.with_embeddings(projections)
    proba = scorer.probabilities(head, projected)
    metrics = scorer.metrics(proba)
    correct = scorer.correct(proba)
    samples = [
        SampleResult(
            id=data.ids[j],
            label=scorer.truth_text(j),
            prediction=scorer.prediction_text(proba[j]),
            probabilities=np.round(proba[j].astype(float), 6).tolist(),
            correct=bool(correct[j]),
            present=[m for k, m in enumerate(model.modalities) if data.present[j, k]],
            extras=dict(inputs.records[i].extras),
        )
        for j, i in enumerate(rows)
    ]
    robust = options.robustness
    sweeps = _Sweeps((lambda: corruption_sweeps(model, data, inputs, rows, scorer)) if robust else None)
    analysis = None
    try:
        if options.analysis and not task.multi_label:  # the analysis scores a true class: single-label tasks
            for sample, values in zip(samples, coalition_values(head, projected, scorer.y, task.name), strict=True):
                sample.coalitions = np.round(values, 6).tolist()
            emap_rows, emap_classes = emap_predictions(head, projected, options, task.name)
            for j, c in zip(emap_rows, emap_classes, strict=True):
                samples[j].emap_prediction = task.classes[c]
            analysis = analyse(samples, model.modalities, list(task.classes), options, primary=task.name == PRIMARY)
        missing_modality = missing_modality_table(head, projected, scorer) if robust else []
        reliance = modality_reliance(head, projected, scorer) if robust else []
        intervals, curves = scorer.intervals(proba, metrics), scorer.curves(proba, metrics)
    except BaseException:
        sweeps.settle()
        raise
    corruptions = sweeps.result()
    return CheckpointEvaluation(
        name=loaded.name,
        path=str(loaded.path),
        sha256=loaded.card.sha256,
        fusion=loaded.card.fusion,
        kind=loaded.card.kind,
        modalities=list(model.modalities),
        classes=list(task.classes),
        dataset=str(dataset.root),
        dataset_fingerprint=dataset.fingerprint,
        split=split,
        n_rows=len(targets),
        n_excluded=int(sum(excluded.values())) + unlabelled,
        excluded_labels=dict(excluded),
        metrics=metrics,
        intervals=intervals,
        curves=curves,
        samples=samples,
        missing_modality=missing_modality,
        corruptions=corruptions,
        reliance=reliance,
        cost=measure_cost(
            model, inputs.samples(rows[: options.large_batch]), data, options, weights_file=loaded.path / WEIGHTS_FILE
        )
        if options.cost
        else None,
        options=options,
        notes=metrics.notes + notes,
        seconds=time.perf_counter() - started,
        analysis=analysis,
        task=task.name,
        task_kind=task.kind,
        thresholds=scorer.thresholds,
        multi_task=len(model.tasks) > 1,
        started_by=started_by,
        compression=loaded.card.compression.method if loaded.card.compression else None,
        parent=loaded.card.compression.parent_name if loaded.card.compression else None,
        parent_sha256=loaded.card.compression.parent_sha256 if loaded.card.compression else None,
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
    if any((r.dataset_fingerprint, r.split, r.task) != (first.dataset_fingerprint, first.split, first.task) for r in results):
        raise EvaluationError("Results compared side by side must come from the same dataset, split and task.")
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
        task=first.task,
        task_kind=first.task_kind,
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
    task: str | None = None,
    started_by: str = LOCAL_USER,
    inputs: SplitInputs | None = None,
    reuse: Callable[[LoadedCheckpoint | str | Path], CheckpointEvaluation | None] | None = None,
    keep: Callable[[LoadedCheckpoint | str | Path, CheckpointEvaluation], None] | None = None,
    shard: bool = False,
) -> EvaluationReport:
    """Evaluate several checkpoints on one split, sharing decoded inputs and corrupted
    embeddings between them, and test every pair.

    ``inputs`` lets several calls on the same split share decoded samples and corrupted
    embeddings; ``reuse(checkpoint)`` may return an earlier result instead of computing one,
    and ``keep(checkpoint, result)`` receives each computed one (what :func:`evaluate_cached` does).
    Computed results record ``started_by`` (who asked for them).

    With ``shard`` (``python -m core evaluate`` under torchrun), every rank calls this with the same
    arguments and runs in step: each encodes its shards of the split's clean and corrupted inputs,
    all ranks receive the whole, and each then scores it (cheap next to encoding); rank 0 reports.
    The report equals a single process's (see :mod:`core.distributed`).
    """
    started = time.perf_counter()
    options = options or EvaluationOptions()
    dataset = _as_dataset(dataset)
    if inputs is None:
        inputs = SplitInputs(dataset, split, _as_embedding_cache(embedding_cache), shard=shard)
    elif inputs.dataset is not dataset or inputs.split != split:
        raise ValueError("inputs were prepared for another dataset or split")
    results = []
    for checkpoint in checkpoints:
        result = reuse(checkpoint) if reuse is not None else None
        if result is None:
            if progress is not None:
                progress(f"evaluating {getattr(checkpoint, 'name', checkpoint)}")
            result = evaluate_checkpoint(
                checkpoint, dataset, split, options, inputs=inputs, embedding_cache=embedding_cache, device=device, task_name=task,
                started_by=started_by,
            )
            if keep is not None:
                keep(checkpoint, result)
        results.append(result)
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


def incompatibility(loaded: LoadedCheckpoint, dataset: Dataset, task: str | None = None) -> str | None:
    """Why a checkpoint cannot be evaluated on a dataset's ``task`` (it does not predict it, other
    classes, no shared modality), or ``None``."""
    model = loaded.model
    name = task or dataset.tasks[0].name
    if name not in {t.name for t in model.tasks}:
        return f"{loaded.name} does not predict the task {name!r} (it predicts {', '.join(t.name for t in model.tasks)})."
    theirs, ours = set(model.task(name).classes), set(dataset.task(name).classes)
    if theirs != ours:
        missing = sorted(ours - theirs)
        extra = sorted(theirs - ours)
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
