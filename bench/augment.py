"""Augmentation: does it help when training data is scarce? Measured, not assumed.

The built-in encoders and ``early`` fusion are trained on ``fraction`` (default 20%) of each
class of the demo's training split, once without augmentation and once with every transform of
every modality (:mod:`core.train.augment`), with the same seeds; each checkpoint (the three
``<modality>-only`` baselines, whose encoders the augmentation trains, and ``early``) is scored on
the whole test split. ``gain_points`` is augmented minus plain test accuracy, in points, per seed
and on average.

Options (all optional): ``data``, ``fraction``, ``seeds`` (default 0 and 1), ``models``, ``quick``.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.subsets import stratified_fraction, train_and_score, training_subset
from core.data import load_dataset
from core.encoders.cache import EmbeddingCache
from core.settings import settings
from core.train import TrainConfig
from core.train.augment import AUGMENTATIONS


def run(options: dict[str, Any]) -> dict[str, Any]:
    quick = bool(options.get("quick"))
    dataset = load_dataset(Path(options.get("data") or settings().demo_data))
    fraction = float(options.get("fraction", 0.2))
    seeds = [int(s) for s in options.get("seeds", [0] if quick else [0, 1])]
    names = list(options.get("models", ["early", *(f"{m}-only" for m in dataset.modalities())]))
    kept = stratified_fraction(dataset, fraction)
    subset = training_subset(dataset, lambda r, rng: r.id in kept, f"fraction={fraction}")
    cache = EmbeddingCache()
    runs: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        for arm, augment in (("plain", {}), ("augmented", dict(AUGMENTATIONS))):
            config = TrainConfig(seed=seed, augment=augment)
            if quick:
                config.encoder_epochs, config.fusion_epochs, config.patience = 2, 3, 2
            runs[f"{arm}/seed{seed}"] = train_and_score(subset, config, names, cache)
    gains = {
        name: {
            f"seed{s}": 100 * (runs[f"augmented/seed{s}"][name]["test_accuracy"] - runs[f"plain/seed{s}"][name]["test_accuracy"])
            for s in seeds
        }
        for name in names
    }
    return {
        "section": "augment",
        "fraction": fraction,
        "training_rows": len(subset.split("train")),
        "full_training_rows": len(dataset.split("train")),
        "seeds": seeds,
        "augmentations": {m: list(t) for m, t in AUGMENTATIONS.items()},
        "runs": runs,
        "gain_points": {name: {**by_seed, "mean": statistics.mean(by_seed.values())} for name, by_seed in gains.items()},
    }


def table(section: dict[str, Any]) -> str:
    """README table: test accuracy without and with augmentation, per seed, and the mean gain."""
    from bench.table import _num, _rows

    rows = []
    for name, gains in section.get("gain_points", {}).items():
        cells = []
        for seed in section.get("seeds", []):
            plain = section["runs"][f"plain/seed{seed}"][name]["test_accuracy"]
            augmented = section["runs"][f"augmented/seed{seed}"][name]["test_accuracy"]
            cells.append(f"{_num(plain)} → {_num(augmented)} ({gains[f'seed{seed}']:+.1f})")
        rows.append([f"`{name}`", *cells, f"{gains['mean']:+.1f}"])
    header = ["Checkpoint", *(f"seed {s}: plain → augmented (points)" for s in section.get("seeds", [])), "Mean gain (points)"]
    note = (
        f"Trained on {section.get('training_rows')} of the {section.get('full_training_rows')} training rows "
        f"({section.get('fraction', 0):.0%} of each class); scored on the whole test split."
    )
    return f"{note}\n\n{_rows(header, rows)}"
