"""Several users at once: one loaded model shared read-only by 8 threads gives the sequential
results, and nothing (prediction, modality Shapley, LIME) hooks, moves or changes it."""

from __future__ import annotations

import pytest
import torch

from bench.reliability import concurrent_users
from core.checkpoints import load_checkpoint
from core.data import load_sample


@pytest.fixture(scope="module")
def shared(small_checkpoints, small_demo):
    loaded = load_checkpoint(small_checkpoints["early"])
    samples = [load_sample(record) for record in small_demo.split("test")[:4]]
    return loaded, samples


@pytest.mark.timeout(300)
def test_eight_threads_match_sequential_and_leave_the_model_untouched(shared):
    loaded, samples = shared
    result = concurrent_users(loaded, samples, threads=8)
    assert result.tasks == 16  # predictions, modality Shapley and LIME, interleaved
    assert result.identical, result.mismatches
    assert result.model_unchanged
    assert result.hooks_added == 0


def test_concurrent_users_notices_a_model_changed_mid_run(shared):
    """The check itself must be able to fail: a task that nudges a weight is caught."""
    loaded, samples = shared
    parameter = next(loaded.model.fusion.parameters())
    original = parameter.detach().clone()
    classify = loaded.model.classify

    def mutating_classify(*args, **kwargs):
        with torch.no_grad():
            parameter.add_(1e-3)
        return classify(*args, **kwargs)

    loaded.model.classify = mutating_classify
    try:
        result = concurrent_users(loaded, samples, threads=2)
    finally:
        del loaded.model.classify
        with torch.no_grad():
            parameter.copy_(original)
    assert not result.model_unchanged
