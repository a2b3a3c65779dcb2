"""Encoders: shapes, determinism, batch/single agreement, spec round trips, the embedding cache.

Pretrained encoders use the weights packaged in the venv; Hugging Face encoders use tiny
random models saved to a temp directory. Nothing touches the network (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from core.encoders import ENCODER_CHOICES, build_encoder, encoder_from_choice
from core.encoders.audio_cnn import FLOOR_DB, BuiltinAudioEncoder, crop_or_pad
from core.encoders.image_cnn import BuiltinImageEncoder
from core.encoders.text_cnn import BuiltinTextEncoder, tokenize
from core.errors import EncoderLoadError
from core.inference import BatchSize, encode
from core.io import SAMPLE_RATE
from tests.core.encoders.tiny_hf import save_tiny_models

RNG = np.random.default_rng(0)
IMAGES = [RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in [(40, 60), (32, 32), (100, 17), (5, 9)]]
TEXTS = ["A red square", "the blue circle is big", "A red, red circle!", "twelve 12 dogs"]


def _waveform(seconds: float, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.01
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


AUDIO = [_waveform(s, f, i) for i, (s, f) in enumerate([(1.0, 440), (0.3, 880), (2.5, 300), (1.2, 600)])]


def encode_values(encoder, values, batch_size: int = 64) -> torch.Tensor:
    return encode(encoder.eval(), values, torch.device("cpu"), batch=BatchSize(batch_size))


def _check_encoder(encoder, values, atol: float = 1e-5) -> torch.Tensor:
    """Shape [B, out_dim], finite, deterministic, and the batch equals one-by-one encoding."""
    batch = encode_values(encoder, values, batch_size=len(values))
    assert batch.shape == (len(values), encoder.out_dim)
    assert batch.dtype == torch.float32
    assert torch.isfinite(batch).all()
    again = encode_values(encoder, values, batch_size=len(values))
    torch.testing.assert_close(batch, again, rtol=0, atol=0)
    one_by_one = torch.cat([encode_values(encoder, [v]) for v in values])
    torch.testing.assert_close(batch, one_by_one, rtol=1e-4, atol=atol)
    assert not torch.allclose(batch[0], batch[1]), "different inputs gave the same embedding"
    return batch


def _check_round_trip(encoder, values) -> None:
    """The JSON spec rebuilds the same architecture; with the same weights, the same outputs."""
    spec = json.loads(json.dumps(encoder.spec()))
    rebuilt = build_encoder(encoder.modality, spec)
    assert type(rebuilt) is type(encoder)
    assert rebuilt.spec() == encoder.spec()
    original = {k: v.shape for k, v in encoder.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == original
    rebuilt.load_state_dict(encoder.state_dict())
    assert rebuilt.cache_id() == encoder.cache_id()
    torch.testing.assert_close(encode_values(rebuilt, values), encode_values(encoder, values))


# --- builtin encoders ---------------------------------------------------------------


def test_builtin_image_shapes_determinism_and_round_trip():
    torch.manual_seed(0)
    encoder = encoder_from_choice("image", "builtin")
    assert isinstance(encoder, BuiltinImageEncoder) and encoder.trainable
    prepared = encoder.prepare(IMAGES[2])
    assert prepared.shape == (3, 32, 32) and prepared.min() >= 0.0 and prepared.max() <= 1.0
    _check_encoder(encoder, IMAGES)
    _check_round_trip(encoder, IMAGES)


def test_builtin_cache_id_follows_the_weights():
    encoder = BuiltinImageEncoder()
    before = encoder.cache_id()
    assert encoder.cache_id() == before
    with torch.no_grad():
        encoder.head.bias.add_(1.0)
    assert encoder.cache_id() != before


def test_builtin_text_vocab_unknown_words_and_round_trip():
    torch.manual_seed(0)
    assert tokenize("Hello, World! 42 cats_dogs") == ["hello", "world", "42", "cats", "dogs"]
    encoder = encoder_from_choice("text", "builtin", corpus=TEXTS)
    assert isinstance(encoder, BuiltinTextEncoder)
    # Most frequent first ("red" x3, "a"/"circle" x2), ties alphabetical.
    assert encoder.vocab[:5] == ["<pad>", "<unk>", "red", "a", "circle"]
    ids = encoder.prepare("RED zebra circle")
    assert ids.shape == (32,)
    assert ids[:4].tolist() == [encoder.index["red"], 1, encoder.index["circle"], 0]
    assert encoder.prepare("!!!")[:2].tolist() == [1, 0]  # no word: a lone <unk>
    assert (encoder.prepare(" ".join(["red"] * 50)) != 0).sum() == 32  # truncated
    limited = BuiltinTextEncoder.from_corpus(TEXTS, min_count=2, max_size=2)
    assert limited.vocab == ["<pad>", "<unk>", "red", "a"]
    _check_encoder(encoder, TEXTS)
    _check_round_trip(encoder, TEXTS)
    assert encoder.tokenize("The blue circle") == ["the", "blue", "circle"]


def test_builtin_text_needs_a_corpus():
    with pytest.raises(EncoderLoadError, match="training texts"):
        encoder_from_choice("text", "builtin")


def test_builtin_audio_shapes_crop_pad_and_round_trip():
    torch.manual_seed(0)
    encoder = encoder_from_choice("audio", "builtin")
    assert isinstance(encoder, BuiltinAudioEncoder)
    assert encoder.frame_seconds == pytest.approx(0.01) and encoder.clip_seconds == 1.0
    for seconds in (0.1, 5.0):
        spec = encoder.spectrogram(_waveform(seconds))
        assert spec.shape == (40, 101) and spec.dtype == np.float32
        assert encoder.prepare(_waveform(seconds)).shape == (1, 40, 101)
    # 0.1 s is centred in 1 s of digital silence: the outer frames sit at the floor.
    short = encoder.spectrogram(_waveform(0.1))
    assert np.all(short[:, :30] == FLOOR_DB) and short[:, 50].max() > -20
    # prepare_spectrogram is the fixed map the CNN sees; masking to the floor means silence.
    torch.testing.assert_close(encoder.prepare_spectrogram(short), encoder.prepare(_waveform(0.1)))
    _check_encoder(encoder, AUDIO)
    _check_round_trip(encoder, AUDIO)


def test_the_torch_log_mel_for_gpus_equals_librosa_on_the_cpu(monkeypatch):
    """The GPU path (torch STFT + mel) gives what librosa gives, for speech-like, quiet, silent and long clips."""
    encoder = encoder_from_choice("audio", "builtin")
    rng = np.random.default_rng(0)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    waves = [
        (tone + 0.01 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32),
        (0.001 * rng.standard_normal(4000)).astype(np.float32),
        np.zeros(SAMPLE_RATE // 2, np.float32),
        (0.5 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32),
    ]
    librosa_db = np.stack([encoder.spectrogram(w) for w in waves])
    clips = torch.from_numpy(np.stack([crop_or_pad(w, encoder.clip_samples) for w in waves]))
    np.testing.assert_allclose(encoder.log_mel(clips).numpy(), librosa_db, atol=1e-3)  # dB
    assert not encoder.prepares_on(torch.device("cpu")) and encoder.prepares_on(torch.device("cuda"))
    # What a GPU would run, forced on the CPU: the batch the CNN sees matches the librosa path's.
    monkeypatch.setattr(BuiltinAudioEncoder, "prepares_on", lambda self, device: True)
    torch.testing.assert_close(
        encoder.prepare_batch(waves, torch.device("cpu")), torch.stack([encoder.prepare(w) for w in waves]), atol=1e-4, rtol=0
    )


def test_crop_keeps_the_loudest_window_and_pad_centres():
    quiet = np.full(5 * SAMPLE_RATE, 0.001, dtype=np.float32)
    quiet[3 * SAMPLE_RATE : 3 * SAMPLE_RATE + 1600] = 0.9  # a 0.1 s click at 3 s
    cropped = crop_or_pad(quiet, SAMPLE_RATE)
    assert cropped.shape == (SAMPLE_RATE,) and np.sum(cropped == np.float32(0.9)) == 1600
    np.testing.assert_array_equal(crop_or_pad(quiet, SAMPLE_RATE), cropped)
    padded = crop_or_pad(np.ones(1600, dtype=np.float32), SAMPLE_RATE)
    assert padded.shape == (SAMPLE_RATE,) and padded.sum() == 1600
    assert padded[: (SAMPLE_RATE - 1600) // 2].sum() == 0 and padded[SAMPLE_RATE // 2] == 1


# --- packaged pretrained encoders ---------------------------------------------------


def test_minilm_packaged_weights_rank_similar_sentences_closer():
    encoder = encoder_from_choice("text", "minilm")
    assert encoder.out_dim == 384 and not encoder.trainable
    sentences = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Quarterly tax revenue fell sharply."]
    vectors = _check_encoder(encoder, sentences)
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(3))
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert encoder.tokenize("Hello, world") == ["Hello", ",", "world"]
    _check_round_trip(encoder, sentences[:1])


def test_efficientnet_lite0_packaged_weights():
    encoder = encoder_from_choice("image", "efficientnet-lite0")
    assert encoder.out_dim == 1280 and not encoder.trainable
    assert encoder.prepare(IMAGES[0]).shape == (3, 224, 224)
    _check_encoder(encoder, IMAGES[:2], atol=1e-4)
    _check_round_trip(encoder, IMAGES[:1])


def test_resemblyzer_matches_the_reference_and_batches():
    from resemblyzer import VoiceEncoder
    from resemblyzer.audio import normalize_volume

    encoder = build_encoder("audio", {"kind": "resemblyzer", "trim_silence": False})
    assert encoder.out_dim == 256 and not encoder.trainable
    vectors = _check_encoder(encoder, AUDIO)
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(len(AUDIO)))
    reference = VoiceEncoder(device="cpu", verbose=False).embed_utterance(normalize_volume(AUDIO[2], -30, True))
    torch.testing.assert_close(vectors[2], torch.from_numpy(reference), rtol=1e-4, atol=1e-5)
    # Trimming may remove everything from a short or silent clip: that must still embed.
    trimming = encoder_from_choice("audio", "resemblyzer")
    out = encode_values(trimming, [np.zeros(1600, dtype=np.float32), AUDIO[1]])
    assert out.shape == (2, 256) and torch.isfinite(out).all()


def test_choices_for_the_wrong_modality_are_refused():
    assert set(ENCODER_CHOICES) == {"audio", "image", "text"}
    with pytest.raises(EncoderLoadError, match="text encoder and cannot encode image"):
        encoder_from_choice("image", "minilm")
    with pytest.raises(EncoderLoadError, match="Unknown encoder"):
        encoder_from_choice("audio", "wavenet")
    with pytest.raises(EncoderLoadError, match="Unknown modality"):
        build_encoder("video", {"kind": "builtin"})


# --- Hugging Face encoders on tiny random models ------------------------------------

@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    return save_tiny_models(tmp_path_factory.mktemp("hf"))


@pytest.mark.parametrize(
    ("model", "modality", "out_dim", "values"),
    [
        ("bert", "text", 32, ["a cat sits on the mat", "the dog", "cats , dogs and a mat", "zebra"]),
        ("vit", "image", 32, IMAGES),
        ("clip", "image", 32, IMAGES),
        ("wav2vec2", "audio", 32, AUDIO),
        ("whisper", "audio", 32, AUDIO[:2]),
    ],
)
def test_huggingface_encoder_on_tiny_models(hf_dirs, model, modality, out_dim, values):
    encoder = encoder_from_choice(modality, f"hf:{hf_dirs[model]}")
    assert encoder.modality == modality and encoder.out_dim == out_dim and not encoder.trainable
    assert encoder.spec() == {
        "kind": "hf",
        "name": str(hf_dirs[model]),
        "modality": modality,
        **({"max_length": 62} if modality == "text" else {}),
    }
    _check_encoder(encoder, values)
    assert build_encoder(modality, json.loads(json.dumps(encoder.spec()))).cache_id() == encoder.cache_id()
    # Frozen: stays in eval mode and without gradients even when a parent calls train().
    encoder.train()
    assert not encoder.training and not encoder.model.training
    assert not any(p.requires_grad for p in encoder.parameters())


def test_huggingface_cache_id_changes_with_the_weights(hf_dirs, tmp_path):
    import shutil

    copy = tmp_path / "bert"
    shutil.copytree(hf_dirs["bert"], copy)
    before = encoder_from_choice("text", f"hf:{copy}").cache_id()
    assert before.startswith(f"hf:{copy}:")
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert encoder_from_choice("text", f"hf:{copy}").cache_id() != before


def test_minilm_spec_with_a_local_path(hf_dirs):
    encoder = build_encoder("text", {"kind": "minilm", "path": str(hf_dirs["bert"])})
    vectors = encode_values(encoder, ["a cat", "the dog"])
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(2))


def test_huggingface_missing_model_gives_a_clear_error(tmp_path):
    with pytest.raises(EncoderLoadError, match="Could not load the image model"):
        encoder_from_choice("image", "hf:no-such-org/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderLoadError, match="from the directory"):
        encoder_from_choice("text", f"hf:{tmp_path / 'empty'}")
    with pytest.raises(EncoderLoadError, match="needs a model name"):
        encoder_from_choice("text", "hf:")
