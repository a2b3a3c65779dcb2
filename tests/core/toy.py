"""A tiny random multimodal model and sample, for tests that need a model but not a trained one."""

import numpy as np
import torch

from core.encoders.audio_cnn import BuiltinAudioEncoder
from core.encoders.image_cnn import BuiltinImageEncoder
from core.encoders.text_cnn import BuiltinTextEncoder
from core.explain import ExplainParams
from core.fusion import build_fusion
from core.model import MultimodalClassifier
from core.sample import DecodedSample

FAST = ExplainParams(
    image_segments=12,
    audio_time_segments=4,
    audio_freq_bands=2,
    lime_samples=60,
    shap_evals=80,
    batch_size=64,
    faithfulness_steps=4,
)
CORPUS = ["a red cat sat", "two blue dogs ran", "one green bird"]


def toy_model(fusion: str = "late", seed: int = 0) -> MultimodalClassifier:
    torch.manual_seed(seed)
    encoders = {
        "image": BuiltinImageEncoder(image_size=16, channels=(8, 16), out_dim=16),
        "audio": BuiltinAudioEncoder(clip_seconds=0.5, n_mels=32, channels=(8, 16), out_dim=16),
        "text": BuiltinTextEncoder.from_corpus(CORPUS, max_tokens=8, embed_dim=8, conv_channels=8, out_dim=16),
    }
    head = build_fusion(fusion, in_dims={m: e.out_dim for m, e in encoders.items()}, num_classes=3, hidden=16)
    return MultimodalClassifier(encoders, head, ["zero", "one", "two"]).eval()


def toy_sample(seed: int = 0) -> DecodedSample:
    rng = np.random.default_rng(seed)
    return DecodedSample(
        image=rng.integers(0, 256, (37, 29, 3), dtype=np.uint8),
        text="A red cat, two dogs!",
        audio=(0.1 * rng.standard_normal(12000)).astype(np.float32),
    )
