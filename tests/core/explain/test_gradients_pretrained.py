"""Gradients through frozen encoders: the packaged pretrained ones (EfficientNet-Lite0,
MiniLM, Resemblyzer) and tiny random Hugging Face models (BERT, ViT, CLIP vision,
wav2vec2, Whisper), placed on the same grids as SHAP."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from core.encoders import encoder_from_choice
from core.explain import ExplainParams, explain
from core.explain.gradient_inputs import resemblyzer_positions
from core.fusion import build_fusion
from core.model import MultimodalClassifier
from core.sample import DecodedSample
from tests.core.encoders.tiny_hf import save_tiny_models
from tests.core.explain.builders import assert_untouched, snapshot

PARAMS = ExplainParams(image_segments=9, audio_time_segments=4, shap_evals=60, faithfulness_steps=2, ig_steps=4)


def _model(encoders: dict, fusion: str = "early") -> MultimodalClassifier:
    torch.manual_seed(0)
    head = build_fusion(fusion, in_dims={m: e.out_dim for m, e in encoders.items()}, num_classes=3, hidden=16)
    return MultimodalClassifier(encoders, head, ["a", "b", "c"]).eval()


def _speech_like(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A voiced, amplitude-modulated tone between two long silences (the VAD trims them)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    voiced = (t > 0.5) & (t < 1.1)
    wave = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t)) * voiced
    return (wave + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


def _check_like_shap(result, reference, sample):
    assert result.image is None or result.image.shape == sample.image.shape[:2]
    if reference.tokens is not None:
        assert [t for t, _ in result.tokens] == [t for t, _ in reference.tokens]
    if reference.audio is not None:
        assert result.audio.shape == reference.audio.shape
        np.testing.assert_array_equal(result.audio_times, reference.audio_times)
    for m, scores in reference.segment_scores.items():
        assert result.segment_scores[m].shape == scores.shape
        assert np.isfinite(result.segment_scores[m]).all()


def _check_completeness(result):
    meta = result.metadata
    assert meta["not_differentiable"] == {}
    assert all(error < 1e-4 for error in meta["path_check"].values()), meta["path_check"]
    total = sum(result.modality_totals.values())
    assert abs(total - meta["difference"]) <= abs(meta["convergence_delta"]) + 1e-5


@pytest.mark.slow
def test_packaged_pretrained_encoders_are_differentiable():
    encoders = {
        "image": encoder_from_choice("image", "efficientnet-lite0"),
        "text": encoder_from_choice("text", "minilm"),
        "audio": encoder_from_choice("audio", "resemblyzer"),
    }
    model = _model(encoders)
    sample = DecodedSample(
        image=np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8),
        text="A cat sits, on the mat!",
        audio=_speech_like(),
    )
    before = snapshot(model)
    results = explain(model, sample, ["shap", "integrated_gradients", "grad_cam"], params=PARAMS, quality=False)
    result, reference, cam = results["integrated_gradients"], results["shap"], results["grad_cam"]
    _check_completeness(result)
    assert "silence trimmed" in result.metadata["inputs"]["audio"]
    _check_like_shap(result, reference, sample)
    # EfficientNet's centre crop keeps rows 14.9 to 104.7 of 120: the bands outside get no attribution.
    assert np.abs(result.image[:14]).sum() == 0 and np.abs(result.image[105:]).sum() == 0
    assert np.abs(result.image[15:105]).sum() > 0
    assert cam.metadata["layer"] == "net._blocks.15" and cam.metadata["layer_grid"] == [7, 7]
    assert cam.image.shape == (120, 90)
    assert_untouched(model, before)


def test_resemblyzer_positions_follow_the_trimmed_silences():
    encoder = encoder_from_choice("audio", "resemblyzer")
    wave = _speech_like()
    prepared = encoder.preprocess(wave)
    assert len(prepared) < len(wave)
    positions = resemblyzer_positions(encoder, wave, prepared)
    assert len(positions) == len(prepared) and np.all(np.diff(positions) > 0)
    # The kept samples are the voiced middle, up to the gain.
    gain = prepared[positions.size // 2] / wave[positions[positions.size // 2]]
    np.testing.assert_allclose(prepared, wave[positions] * gain, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- tiny Hugging Face models
@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("hf-gradients"))


@pytest.mark.parametrize(("image", "audio"), [("vit", "wav2vec2"), ("clip", "whisper")])
def test_hugging_face_encoders_are_differentiable(hf_dirs, image, audio):
    encoders = {
        "image": encoder_from_choice("image", f"hf:{hf_dirs[image]}"),
        "text": encoder_from_choice("text", f"hf:{hf_dirs['bert']}"),
        "audio": encoder_from_choice("audio", f"hf:{hf_dirs[audio]}"),
    }
    model = _model(encoders, "gated")
    rng = np.random.default_rng(1)
    sample = DecodedSample(
        image=rng.integers(0, 256, (40, 56, 3), dtype=np.uint8),
        text="the cats sit on a mat, the dog",
        audio=(0.1 * rng.standard_normal(12000)).astype(np.float32),
    )
    before = snapshot(model)
    params = replace(PARAMS, ig_steps=16)
    results = explain(model, sample, ["shap", "integrated_gradients"], params=params, quality=False)
    result, reference = results["integrated_gradients"], results["shap"]
    _check_completeness(result)
    _check_like_shap(result, reference, sample)
    # Special tokens keep their own embedding in the baseline: every word piece's
    # attribution lands on a word, none is left unplaced.
    text_total = result.modality_totals["text"]
    assert result.segment_scores["text"].sum() == pytest.approx(text_total, rel=1e-6, abs=1e-9)
    assert result.metadata["audio_domain"] == "waveform"
    audio_total = result.modality_totals["audio"]
    assert result.audio.sum() == pytest.approx(audio_total, rel=1e-6, abs=1e-9)
    if image == "clip":
        # CLIP's processor resizes the shorter side and crops the centre: the side bands are outside.
        assert np.abs(result.image[:, :7]).sum() == 0 and np.abs(result.image[:, -8:]).sum() == 0
    assert_untouched(model, before)
