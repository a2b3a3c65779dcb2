"""Small models and samples for the explanation tests: randomly initialised, built in milliseconds."""

from __future__ import annotations

import numpy as np
import torch

from core.encoders.audio_cnn import BuiltinAudioEncoder
from core.encoders.image_cnn import BuiltinImageEncoder
from core.encoders.text_cnn import BuiltinTextEncoder
from core.fusion import build_fusion
from core.model import MultimodalClassifier
from core.sample import DecodedSample

CORPUS = ["a red cat sat", "two blue dogs ran", "one green bird", "the cat and the dog"]
CLASSES = ["zero", "one", "two"]


def tiny_model(fusion: str = "early", seed: int = 0) -> MultimodalClassifier:
    """Builtin image (16 px), audio (0.5 s, 32 mels) and text CNNs + ``fusion``, in eval mode."""
    torch.manual_seed(seed)
    encoders = {
        "image": BuiltinImageEncoder(image_size=16, channels=(8, 16), out_dim=16),
        "audio": BuiltinAudioEncoder(clip_seconds=0.5, n_mels=32, channels=(8, 16), out_dim=16),
        "text": BuiltinTextEncoder.from_corpus(CORPUS, max_tokens=8, embed_dim=8, conv_channels=8, out_dim=16),
    }
    head = build_fusion(fusion, in_dims={m: e.out_dim for m, e in encoders.items()}, num_classes=3, hidden=16)
    return MultimodalClassifier(encoders, head, CLASSES).eval()


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
