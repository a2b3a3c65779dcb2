"""What the augmentation and imbalance benchmarks share: a training subset of the demo, and a run
trained on it and scored on the untouched test split."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.checkpoints import load_checkpoint
from core.data import Dataset, Record
from core.embeddings import classify_embedded, embed_records
from core.encoders.cache import EmbeddingCache
from core.train import TrainConfig, Trainer


def training_subset(dataset: Dataset, keep: Callable[[Record, np.random.Generator], bool], tag: str, seed: int = 0) -> Dataset:
    """The dataset with only the training rows ``keep`` accepts (validation and test untouched).

    ``keep(record, rng)`` sees the training rows in manifest order with one seeded generator.
    """
    rng = np.random.default_rng(seed)
    records = [r for r in dataset.records if r.split != "train" or keep(r, rng)]
    fingerprint = hashlib.sha256(f"{dataset.fingerprint}|{tag}|{seed}".encode()).hexdigest()
    return dataclasses.replace(dataset, records=records, fingerprint=fingerprint)


def stratified_fraction(dataset: Dataset, fraction: float, seed: int = 0) -> set[str]:
    """Ids of ``fraction`` of each class's training rows (at least one), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for label in dataset.classes:
        ids = [r.id for r in dataset.split("train") if r.label == label]
        take = max(1, round(fraction * len(ids)))
        chosen.update(ids[i] for i in rng.permutation(len(ids))[:take])
    return chosen


def train_and_score(dataset: Dataset, config: TrainConfig, models: list[str], cache: EmbeddingCache | None) -> dict[str, Any]:
    """Train ``models`` on ``dataset`` and score each on the test split: accuracy, balanced accuracy,
    and every class's recall."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        results = Trainer(dataset, Path(out), config, cache=cache, show_progress=False).run(models)
        scored = {}
        test = dataset.split("test")
        for result in results:
            model = load_checkpoint(result.path).model
            data = embed_records(model, test, cache=cache, limits=dataset.limits)
            predicted = classify_embedded(model, data).argmax(axis=1)
            truth = data.labels.numpy()
            recall = {c: float(np.mean(predicted[truth == i] == i)) for i, c in enumerate(model.classes) if (truth == i).any()}
            scored[result.name] = {
                "test_accuracy": result.metrics["test"]["accuracy"],
                "balanced_accuracy": result.metrics["test"]["balanced_accuracy"],
                "recall": recall,
                "epochs": result.epochs,
                "seconds": round(result.seconds, 2),
            }
    return scored
