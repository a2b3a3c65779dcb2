"""Augmentation: transforms keep shapes and stay in range, each epoch draws afresh, runs are reproducible."""

import numpy as np
import pytest
import torch

from core.card import read_card
from core.checkpoints import load_checkpoint
from core.encoders.audio_cnn import BuiltinAudioEncoder
from core.encoders.image_cnn import BuiltinImageEncoder
from core.encoders.text_cnn import BuiltinTextEncoder
from core.errors import TrainingError
from core.train import Trainer
from core.train.augment import (
    AUGMENTATIONS,
    AugmentedInputs,
    augment_image,
    augment_text,
    augment_waveform,
    parse_augmentations,
    spec_augment,
)
from tests.conftest import fast_config


def test_parse_augmentations():
    assert parse_augmentations(None) == {} and parse_augmentations("none") == {}
    assert parse_augmentations("all") == AUGMENTATIONS
    assert parse_augmentations("image, text") == {"image": AUGMENTATIONS["image"], "text": AUGMENTATIONS["text"]}
    assert parse_augmentations("audio=specaugment+shift") == {"audio": ("shift", "specaugment")}
    with pytest.raises(TrainingError, match="unknown modality 'video'"):
        parse_augmentations("video")
    with pytest.raises(TrainingError, match="unknown image transform"):
        parse_augmentations("image=flip")


def test_image_transforms_keep_size_and_range_and_follow_the_generator():
    image = np.zeros((32, 32, 3), np.uint8)
    image[8:24, 12:20] = 200
    out = augment_image(image, AUGMENTATIONS["image"], np.random.default_rng(1))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    again = augment_image(image, AUGMENTATIONS["image"], np.random.default_rng(1))
    assert np.array_equal(out, again)
    assert np.array_equal(augment_image(image, (), np.random.default_rng(1)), image)


def test_audio_transforms_keep_length_gain_and_snr_in_their_ranges():
    rng = np.random.default_rng(0)
    clip = np.sin(np.linspace(0, 400 * np.pi, 16_000)).astype(np.float32) * 0.3
    louder = augment_waveform(clip, ("gain",), rng, 16_000)
    ratio_db = 20 * np.log10(np.abs(louder).max() / np.abs(clip).max())
    assert -6.01 <= ratio_db <= 6.01
    noisy = augment_waveform(clip, ("noise",), np.random.default_rng(3), 16_000)
    snr = 10 * np.log10(np.mean(clip**2) / np.mean((noisy - clip) ** 2))
    assert 9.5 <= snr <= 30.5
    shifted = augment_waveform(clip, ("shift",), np.random.default_rng(5), 16_000)
    assert shifted.shape == clip.shape and shifted.dtype == np.float32
    logmel = np.zeros((40, 101), np.float32)
    masked = spec_augment(logmel, np.random.default_rng(2), -100.0)
    rows, cols = (masked == -100.0).all(axis=1).sum(), (masked == -100.0).all(axis=0).sum()
    assert rows <= 6 and cols <= 10


def test_text_transforms_drop_and_swap_words_but_keep_one():
    words = ["the", "digit", "after", "six", "is", "seven"]
    seen = {augment_text(" ".join(words), ("dropout", "swap"), np.random.default_rng(s), str.split) for s in range(30)}
    assert len(seen) > 5
    assert all(1 <= len(t.split()) <= len(words) for t in seen)
    assert augment_text("seven", ("dropout",), np.random.default_rng(0), str.split) == "seven"


@pytest.mark.parametrize(
    "encoder, value",
    [
        (BuiltinImageEncoder(), np.full((32, 32, 3), 90, np.uint8)),
        (BuiltinAudioEncoder(), (0.1 * np.random.default_rng(0).standard_normal(20_000)).astype(np.float32)),
        (BuiltinTextEncoder.from_corpus(["one two three four five"]), "one two three four five"),
    ],
    ids=["image", "audio", "text"],
)
def test_inputs_are_drawn_afresh_each_epoch_and_reproducibly(encoder, value):
    inputs = AugmentedInputs([value, None, value], encoder, AUGMENTATIONS[encoder.modality], seed=0)
    plain = encoder.prepare(value)
    first = inputs[0]
    assert first.shape == plain.shape and inputs[1] is None
    assert torch.equal(inputs[0], first)  # the same epoch and row: the same draw
    assert not torch.equal(inputs[2], first)  # another row draws its own
    inputs.set_epoch(1)
    assert not torch.equal(inputs[0], first)
    inputs.set_epoch(0)
    assert torch.equal(inputs[0], first)


def test_training_with_augmentation_is_reproducible_and_recorded(small_demo, tmp_path):
    config = fast_config()
    config.augment = {"text": AUGMENTATIONS["text"]}
    runs = [Trainer(small_demo, tmp_path / name, config, show_progress=False).run(["text-only"])[0] for name in "ab"]
    plain = Trainer(small_demo, tmp_path / "plain", fast_config(), show_progress=False).run(["text-only"])[0]
    weights = [load_checkpoint(r.path).model.state_dict() for r in (*runs, plain)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    assert read_card(runs[0].path).training.config["augment"] == {"text": ["dropout", "swap"]}
    assert read_card(plain.path).training.config["augment"] == {}
