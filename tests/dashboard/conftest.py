"""A small demo dataset and three quickly trained checkpoints for the dashboard tests.

Built once per test session in a temporary folder (about a minute on two CPU cores),
so the dashboard tests never depend on the full demo having been built.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.data import build_demo, load_dataset
from core.encoders.cache import EmbeddingCache
from core.train import TrainConfig, Trainer

FIXTURE_MODELS = ["early", "late", "image-only"]


def build_small_demo(root: Path) -> tuple[Path, Path]:
    """Dataset in ``root/data`` and checkpoints of :data:`FIXTURE_MODELS` in ``root/checkpoints``."""
    data, checkpoints = root / "data", root / "checkpoints"
    build_demo(data, n_source=60, progress=False)
    config = TrainConfig(encoder_epochs=2, fusion_epochs=2, patience=2)
    Trainer(load_dataset(data), checkpoints, config, cache=EmbeddingCache(root / "embeddings"), show_progress=False).run(FIXTURE_MODELS)
    return data, checkpoints


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables pointing the dashboard at the small demo, with private caches."""
    root = tmp_path_factory.mktemp("dashboard-demo")
    data, checkpoints = build_small_demo(root)
    return {
        "FUSION_DEMO_DATA": str(data),
        "FUSION_CHECKPOINTS": str(checkpoints),
        "FUSION_CACHE_DIR": str(root / "cache"),
        "FUSION_RUNS": str(root / "runs"),
    }


@pytest.fixture
def dashboard_env(small_demo: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in small_demo.items():
        monkeypatch.setenv(name, value)
    return small_demo


@dataclass
class LiveServer:
    url: str
    pid: int


def _live_server(small_demo: dict[str, str], log_dir: Path) -> Iterator[LiveServer]:
    """A real ``streamlit run`` on a free localhost port, pointed at the small demo."""
    from core.dashboard_server import CHROMIUM, free_port, start_dashboard, stop_dashboard, wait_healthy

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium to run browser tests)")
    pytest.importorskip("playwright.sync_api", reason="the playwright python package is not installed")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_dir / "streamlit.log", "wb") as log:
        process = start_dashboard(port, small_demo, log)
        try:
            wait_healthy(url, process)
            yield LiveServer(url, process.pid)
        finally:
            stop_dashboard(process)


@pytest.fixture(scope="module")
def live_server(small_demo: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One dashboard server per test module (browser tests), stopped afterwards."""
    yield from _live_server(small_demo, tmp_path_factory.mktemp("server"))
