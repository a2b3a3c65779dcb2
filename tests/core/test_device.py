"""Device faults: no GPU falls back to the CPU, and out-of-memory during a batched
explanation halves the batch and carries on with the same answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.checkpoints import load_checkpoint
from core.data import load_sample
from core.device import is_out_of_memory, pick_device
from core.explain import ExplainParams, explain
from core.inference import predict_proba

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without CUDA")


@needs_no_cuda
def test_forced_cuda_without_a_gpu_falls_back_to_cpu(monkeypatch):
    monkeypatch.setenv("FUSION_DEVICE", "cuda")
    assert pick_device().type == "cpu"
    assert pick_device("cuda:1").type == "cpu"
    monkeypatch.delenv("FUSION_DEVICE")
    assert pick_device().type in ("cpu", "mps")


@needs_no_cuda
def test_checkpoint_asked_onto_cuda_loads_on_cpu(small_checkpoints, small_demo, monkeypatch):
    monkeypatch.setenv("FUSION_DEVICE", "cuda")
    loaded = load_checkpoint(small_checkpoints["late"], device=pick_device())
    assert loaded.model.device.type == "cpu"
    proba = predict_proba(loaded.model, [load_sample(small_demo.split("test")[0])])
    assert proba.shape == (1, len(loaded.model.classes)) and np.isclose(proba.sum(), 1.0)


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_lime_on_a_checkpoint_survives_out_of_memory_by_halving(small_checkpoints, small_demo, monkeypatch):
    """A simulated CUDA OOM for image batches above 4 rows: LIME finishes with the same result."""
    loaded = load_checkpoint(small_checkpoints["early"])
    sample = load_sample(next(r for r in small_demo.split("test") if r.image))
    params = ExplainParams(
        image_segments=8, lime_samples=40, batch_size=32, faithfulness_steps=2, modalities=("image",)
    )
    expected = explain(loaded, sample, "lime", params=params)["lime"]

    encoder = loaded.model.encoders["image"]
    forward = type(encoder).forward
    batch_sizes = []

    def fragile_forward(self, batch):
        batch_sizes.append(batch.shape[0])
        if batch.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(self, batch)

    monkeypatch.setattr(type(encoder), "forward", fragile_forward)
    result = explain(loaded, sample, "lime", params=params)["lime"]
    assert max(batch_sizes) > 4 and batch_sizes[-1] <= 4, "tried big batches, then halved"
    np.testing.assert_allclose(result.segment_scores["image"], expected.segment_scores["image"], atol=1e-6)


def test_out_of_memory_at_batch_size_one_is_raised_not_looped(small_checkpoints, small_demo, monkeypatch):
    loaded = load_checkpoint(small_checkpoints["early"])
    sample = load_sample(next(r for r in small_demo.split("test") if r.image))
    encoder = loaded.model.encoders["image"]
    forward = type(encoder).forward
    calls = []

    def always_oom(self, batch):
        calls.append(batch.shape[0])
        if len(calls) > 1:  # the first call embeds the unperturbed sample
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(self, batch)

    monkeypatch.setattr(type(encoder), "forward", always_oom)
    params = ExplainParams(image_segments=8, lime_samples=16, batch_size=16, modalities=("image",))
    with pytest.raises(torch.OutOfMemoryError):
        explain(loaded, sample, "lime", params=params)["lime"]
    tried = calls[1:]  # distinct perturbations (at most 16), then halved down to one
    assert tried[0] <= 16 and tried[-1] == 1
    assert all(smaller == larger // 2 for larger, smaller in zip(tried[:-1], tried[1:], strict=True))
