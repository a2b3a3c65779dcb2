"""Class imbalance: what class weights and the balanced sampler do for a rare class.

The demo's training split with one class (``minority``, default ``3``) cut to ``share`` (default
10%) of its rows, the others whole; the built-in encoders and ``early`` fusion trained on it three
ways with the same seed: ``none``, ``class_weights`` (``--class-weights auto``) and
``balanced_sampler``. Each checkpoint is scored on the whole (balanced) test split: accuracy,
balanced accuracy and the minority class's recall.

Options (all optional): ``data``, ``minority``, ``share``, ``seed``, ``models``, ``quick``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.subsets import train_and_score, training_subset
from core.data import load_dataset
from core.encoders.cache import EmbeddingCache
from core.settings import settings
from core.train import TrainConfig

ARMS = {
    "none": {},
    "class_weights": {"class_weights": "auto"},
    "balanced_sampler": {"balanced_sampler": True},
}


def run(options: dict[str, Any]) -> dict[str, Any]:
    quick = bool(options.get("quick"))
    dataset = load_dataset(Path(options.get("data") or settings().demo_data))
    minority = str(options.get("minority", "3" if "3" in dataset.classes else dataset.classes[-1]))
    share = float(options.get("share", 0.1))
    seed = int(options.get("seed", 0))
    names = list(options.get("models", ["early", *(f"{m}-only" for m in dataset.modalities())]))
    subset = training_subset(
        dataset, lambda r, rng: r.label != minority or rng.random() < share, f"minority={minority}@{share}", seed
    )
    counts = subset.class_counts("train")
    cache = EmbeddingCache()
    arms = {}
    for arm, changes in ARMS.items():
        config = TrainConfig(seed=seed, **changes)
        if quick:
            config.encoder_epochs, config.fusion_epochs, config.patience = 2, 3, 2
        scored = train_and_score(subset, config, names, cache)
        arms[arm] = {
            name: {**s, "minority_recall": s["recall"].get(minority)} for name, s in scored.items()
        }
    return {
        "section": "imbalance",
        "minority": minority,
        "share": share,
        "train_counts": counts,
        "imbalance_ratio": max(counts.values()) / max(1, counts[minority]),
        "seed": seed,
        "arms": arms,
    }


def table(section: dict[str, Any]) -> str:
    """README table: accuracy, balanced accuracy and the minority's recall for each remedy."""
    from bench.table import _num, _rows

    rows = [
        [f"`{name}`", arm, _num(s["test_accuracy"]), _num(s["balanced_accuracy"]), _num(s["minority_recall"])]
        for arm, scored in section.get("arms", {}).items()
        for name, s in scored.items()
    ]
    rows.sort(key=lambda row: row[0])
    note = (
        f"Class {section.get('minority')} kept at {section.get('share', 0):.0%} of its training rows "
        f"({section.get('train_counts', {}).get(section.get('minority'), '?')} rows; largest/smallest "
        f"{_num(section.get('imbalance_ratio'))}×), the other classes whole; scored on the balanced test split."
    )
    return f"{note}\n\n{_rows(['Checkpoint', 'Remedy', 'Test acc.', 'Balanced acc.', 'Minority recall'], rows)}"
