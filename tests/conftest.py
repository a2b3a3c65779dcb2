"""Test-wide settings: offline model hubs, a private cache dir, deterministic threads."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's embedding cache or checkpoint folder."""
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "embedding-cache"))
