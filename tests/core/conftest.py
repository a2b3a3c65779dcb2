"""Shared fixtures for core tests: a small demo dataset and quickly trained checkpoints."""

import pytest

from core.data import load_dataset
from core.data.demo import build_demo
from core.train import TrainConfig, Trainer


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    """A 60-source-image demo dataset (about 95 samples), built once per test session."""
    root = tmp_path_factory.mktemp("small-demo")
    build_demo(root / "data", seed=0, progress=False, n_source=60)
    return load_dataset(root / "data")


FAST = TrainConfig(encoder_epochs=2, fusion_epochs=3, patience=2, batch_size=32, seed=0)


@pytest.fixture(scope="session")
def small_checkpoints(small_demo, tmp_path_factory):
    """early + late + image-only checkpoints trained for a few epochs on ``small_demo``."""
    out = tmp_path_factory.mktemp("small-checkpoints")
    results = Trainer(small_demo, out, FAST, show_progress=False).run(["early", "late", "image-only"])
    return {r.name: r.path for r in results}
