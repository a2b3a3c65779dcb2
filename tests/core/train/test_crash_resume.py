"""No lost work: a training run SIGKILLed at any moment leaves complete, loadable checkpoints
only (and an embedding cache without torn entries), ``--resume`` finishes it, and a truncated
cache entry is detected and recomputed through the real embedding path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.reliability import (
    checkpoint_folder_problems,
    kill_training_run,
    resume_is_available,
    resume_training,
)
from core.card import read_card
from core.checkpoints import load_checkpoint
from core.embeddings import embed_records
from core.encoders.cache import EmbeddingCache

SEED = 20261122
RESUME_MISSING = "python -m core train has no --resume yet (the lead is adding it)"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_at_random_moments_leaves_only_complete_checkpoints(small_demo, tmp_path):
    rng = np.random.default_rng(SEED)
    cache = tmp_path / "cache"  # shared by the runs, so kills also land in cache writes
    runs = []
    for attempt in range(3):
        run = kill_training_run(
            small_demo.root,
            tmp_path / f"run-{attempt}",
            tmp_path,
            cache_root=cache,
            kill_after_events=int(rng.integers(1, 27)),
            delay_s=float(rng.uniform(0, 0.2)),
        )
        assert run.problems == [], run
        runs.append(run)
    assert sum(run.killed for run in runs) >= 2, runs  # a run may finish before a late kill point


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_while_a_checkpoint_is_written(small_demo, tmp_path):
    out, cache = tmp_path / "checkpoints", tmp_path / "cache"
    run = kill_training_run(small_demo.root, out, tmp_path, cache_root=cache, kill_on_save=True, fusion="early")
    assert run.killed
    assert run.problems == []
    # The half-written checkpoint is invisible: only hidden temp folders hold it.
    assert all(entry.name.startswith(".") or entry.name in run.checkpoints for entry in out.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(not resume_is_available(), reason=RESUME_MISSING)
def test_resume_after_sigkill_finishes_with_loadable_checkpoints(small_demo, tmp_path):
    out, cache = tmp_path / "checkpoints", tmp_path / "cache"
    # Event 13 is after the three baselines are saved and before the fusions (see a tiny run's events).
    killed = kill_training_run(small_demo.root, out, tmp_path, cache_root=cache, kill_after_events=13)
    assert killed.killed and killed.problems == []
    kept = {name: read_card(out / name).sha256 for name in killed.checkpoints}

    finished = resume_training(small_demo.root, out, cache)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert checkpoint_folder_problems(out) == []
    for name in ("early", "late", *kept):
        load_checkpoint(out / name)
    for name, sha in kept.items():
        assert read_card(out / name).sha256 == sha, f"--resume retrained the complete {name}"


def _vector_files(folder):
    """Each shard's vectors (``shard-<id>.npy``; its sorted keys are ``shard-<id>.keys.npy``)."""
    return sorted(p for p in folder.rglob("shard-*.npy") if not p.name.endswith(".keys.npy"))


def test_damaged_cache_shards_are_recomputed_never_used(small_checkpoints, small_demo, tmp_path):
    model = load_checkpoint(small_checkpoints["early"]).model
    records = small_demo.split("test")[:6]
    cache = EmbeddingCache(tmp_path / "cache")
    fresh = embed_records(model, records)
    embed_records(model, records, cache=cache)
    shards = _vector_files(tmp_path / "cache")
    assert len(shards) == 3  # one per modality: one write, one shard

    truncated, flipped, untouched = shards
    truncated.write_bytes(truncated.read_bytes()[:-7])  # a write cut short
    damaged = bytearray(flipped.read_bytes())
    damaged[-3] ^= 0x40  # a flipped bit in the payload: the checksum catches it
    flipped.write_bytes(bytes(damaged))
    kept = untouched.read_bytes()

    again = embed_records(model, records, cache=EmbeddingCache(tmp_path / "cache"))
    for modality, values in fresh.embeddings.items():
        torch.testing.assert_close(again.embeddings[modality], values, atol=1e-5, rtol=0)
    assert not truncated.exists() and not flipped.exists()  # dropped, and their vectors written anew
    assert len(_vector_files(tmp_path / "cache")) == 3
    assert untouched.read_bytes() == kept
