"""Samples, encoders and model checks for the explanation tests (models: :func:`tests.core.toy.toy_model`)."""

from __future__ import annotations

import numpy as np
import torch

from core.encoders.base import Encoder
from core.sample import DecodedSample


class LeftHalfEncoder(Encoder):
    """Mean colour of the left half of a 32x32 image: the right half cannot matter."""

    modality = "image"
    out_dim = 3

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))

    def prepare(self, value):
        return torch.from_numpy(np.asarray(value, dtype=np.float32) / 255.0).permute(2, 0, 1)

    def forward(self, batch):
        return batch[:, :, :, :16].mean(dim=(2, 3)) * self.scale * 10


def tiny_sample(seed: int = 0, text: str = "A red cat, two dogs and one bird!") -> DecodedSample:
    rng = np.random.default_rng(seed)
    t = np.arange(12000) / 16000
    tone = 0.2 * np.sin(2 * np.pi * 440 * t) * (t > 0.2) * (t < 0.5)
    return DecodedSample(
        image=rng.integers(0, 256, (37, 29, 3), dtype=np.uint8),
        text=text,
        audio=(tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32),
    )


def snapshot(model: torch.nn.Module) -> dict:
    """Parameters and buffers, ``requires_grad`` flags and train/eval modes of ``model``."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
    }


def assert_untouched(model: torch.nn.Module, before: dict) -> None:
    """No hook on any submodule, same parameters, flags and modes as ``before``, no ``.grad``."""
    after = model.state_dict()
    assert before["state"].keys() == after.keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after[key]), key
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before["requires_grad"]
    assert {n: m.training for n, m in model.named_modules()} == before["training"]
    for name, module in model.named_modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            assert not getattr(module, hooks), f"{name}.{hooks}"
    for name, parameter in model.named_parameters():
        assert parameter.grad is None, name
