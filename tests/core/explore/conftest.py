"""Hand-made records and spaces for the exploration tests (no model, no files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.data import Dataset, Record
from core.explore.spaces import FUSED, Space, SplitSpaces


def make_records(n: int, *, classes: int = 3, split: str = "test") -> list[Record]:
    """``n`` text-only records cycling through ``classes`` labels, with two metadata columns."""
    return [
        Record(
            row=i + 1,
            id=f"r{i}",
            label=str(i % classes),
            split=split,
            text=f"sample {i} {'odd' if i % 2 else 'even'}",
            image=Path(f"/nonexistent/{i}.png") if i % 4 == 0 else None,
            extras={"snr": "" if i % 5 == 0 else str(i % 7), "voice": ["en", "fr"][i % 2]},
        )
        for i in range(n)
    ]


def make_dataset(records: list[Record]) -> Dataset:
    classes = sorted({r.label for r in records})
    return Dataset(root=Path("/nonexistent"), records=records, classes=classes, fingerprint="f" * 64)


def clustered_spaces(
    per_class: int = 20, classes: int = 3, dim: int = 8, seed: int = 0, split: str = "train", spread: float = 0.05
) -> SplitSpaces:
    """A fused space (and an ``image`` space on every other record) with one tight cluster per class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 3
    records = make_records(per_class * classes, classes=classes, split=split)
    labels = np.array([int(r.label) for r in records])
    vectors = (centres[labels] + spread * rng.normal(size=(len(records), dim))).astype(np.float32)
    half = np.arange(0, len(records), 2)
    spaces = {
        "image": Space("image", vectors[half], half, "image"),
        FUSED: Space(FUSED, vectors, np.arange(len(records)), "fused"),
    }
    return SplitSpaces("toy", "a" * 64, "f" * 64, split, records, spaces)


@pytest.fixture
def spaces() -> SplitSpaces:
    return clustered_spaces()
