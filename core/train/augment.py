"""Training-time augmentation of the built-in encoders' inputs, drawn fresh for every epoch.

Off unless asked for (``TrainConfig.augment``, ``--augment``), so the demo's numbers stay
reproducible. Stage 1 (each built-in encoder trained as a unimodal classifier) is where it
applies: fusion heads train on cached embeddings of clean inputs, and pretrained encoders are
frozen. Row ``i`` of epoch ``e`` is augmented with a generator seeded by ``(seed, e, i)``, so a
run is deterministic whatever the batch order, the number of ranks or a resume.

=========  ==============  ===========================================================
modality   transform       what it does
=========  ==============  ===========================================================
image      ``crop``        random resized crop: 70-100% of the area, aspect 3:4 to 4:3
image      ``rotate``      rotation by up to ±12° (border filled with the corner colour)
image      ``jitter``      brightness, contrast and saturation each scaled by 0.75-1.25
image      ``noise``       Gaussian pixel noise, std up to 6% of the range
audio      ``shift``       the clip moved by up to ±0.1 s (zeros fill the gap)
audio      ``gain``        gain of -6 to +6 dB
audio      ``noise``       white background noise at a random SNR of 10-30 dB
audio      ``specaugment`` one time mask (up to 10 frames) and one frequency mask (up to
                           6 mel bands) on the log-mel, set to silence (Park et al., 2019)
text       ``dropout``     each word dropped with probability 0.1 (one is always kept)
text       ``swap``        each pair of neighbouring words swapped with probability 0.1
=========  ==============  ===========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from core.errors import TrainingError
from core.sample import MODALITIES

AUGMENTATIONS: dict[str, tuple[str, ...]] = {
    "image": ("crop", "rotate", "jitter", "noise"),
    "audio": ("shift", "gain", "noise", "specaugment"),
    "text": ("dropout", "swap"),
}
"""Every transform of each modality, in the order they are applied."""


def parse_augmentations(text: str | None) -> dict[str, tuple[str, ...]]:
    """``--augment`` as a dict: ``"all"``, ``"image,audio"`` (every transform of those), or
    ``"image=crop+rotate,text=dropout"``; ``""`` or ``"none"``: no augmentation.

    Raises:
        TrainingError: an unknown modality or transform.
    """
    text = (text or "").strip()
    if text in ("", "none"):
        return {}
    if text == "all":
        return dict(AUGMENTATIONS)
    out: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        modality, _, names = item.partition("=")
        modality = modality.strip()
        if modality not in AUGMENTATIONS:
            raise TrainingError(f"--augment: unknown modality {modality!r}; choose from {', '.join(MODALITIES)} (or all).")
        chosen = tuple(n.strip() for n in names.split("+") if n.strip()) if names else AUGMENTATIONS[modality]
        unknown = [n for n in chosen if n not in AUGMENTATIONS[modality]]
        if unknown:
            raise TrainingError(
                f"--augment: unknown {modality} transform(s) {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS[modality])}."
            )
        out[modality] = tuple(n for n in AUGMENTATIONS[modality] if n in chosen)
    return out


# --------------------------------------------------------------------------- the transforms


def augment_image(image: np.ndarray, transforms: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """An augmented copy of an RGB ``uint8`` image (H, W, 3), the same size."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    width, height = picture.size
    if "crop" in transforms:
        area = rng.uniform(0.7, 1.0) * width * height
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w = int(round(min(width, np.sqrt(area * ratio))))
        h = int(round(min(height, np.sqrt(area / ratio))))
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        picture = picture.crop((left, top, left + w, top + h)).resize((width, height), Image.Resampling.BILINEAR)
    if "rotate" in transforms:
        corner = tuple(int(v) for v in np.asarray(picture)[0, 0])
        picture = picture.rotate(rng.uniform(-12.0, 12.0), Image.Resampling.BILINEAR, fillcolor=corner)
    if "jitter" in transforms:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            picture = enhancer(picture).enhance(rng.uniform(0.75, 1.25))
    array = np.asarray(picture, dtype=np.float32)
    if "noise" in transforms:
        array = array + rng.normal(0.0, rng.uniform(0.0, 0.06) * 255.0, array.shape)
    return np.clip(array, 0, 255).astype(np.uint8)


def augment_waveform(clip: np.ndarray, transforms: Sequence[str], rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """An augmented copy of a mono ``float32`` clip, the same length."""
    clip = np.asarray(clip, dtype=np.float32).copy()
    if "shift" in transforms:
        shift = int(rng.integers(-sample_rate // 10, sample_rate // 10 + 1))
        moved = np.zeros_like(clip)
        if shift >= 0:
            moved[shift:] = clip[: len(clip) - shift]
        else:
            moved[:shift] = clip[-shift:]
        clip = moved
    if "gain" in transforms:
        clip = clip * np.float32(10 ** (rng.uniform(-6.0, 6.0) / 20))
    if "noise" in transforms:
        power = float(np.mean(clip.astype(np.float64) ** 2))
        if power > 0:
            noise_power = power / 10 ** (rng.uniform(10.0, 30.0) / 10)
            clip = clip + rng.normal(0.0, np.sqrt(noise_power), clip.shape).astype(np.float32)
    return clip


def spec_augment(logmel: np.ndarray, rng: np.random.Generator, fill: float) -> np.ndarray:
    """One time mask (up to 10 frames) and one frequency mask (up to 6 bands) set to ``fill``."""
    masked = np.array(logmel, dtype=np.float32, copy=True)
    bands, frames = masked.shape
    width = int(rng.integers(0, min(10, frames) + 1))
    start = int(rng.integers(0, frames - width + 1))
    masked[:, start : start + width] = fill
    height = int(rng.integers(0, min(6, bands) + 1))
    start = int(rng.integers(0, bands - height + 1))
    masked[start : start + height, :] = fill
    return masked


def augment_text(text: str, transforms: Sequence[str], rng: np.random.Generator, tokenize) -> str:
    """``text`` with some words dropped and some neighbours swapped (as the encoder tokenises it)."""
    words = tokenize(text)
    if "dropout" in transforms and len(words) > 1:
        kept = [w for w in words if rng.random() >= 0.1]
        words = kept or [words[int(rng.integers(0, len(words)))]]
    if "swap" in transforms:
        i = 0
        while i < len(words) - 1:
            if rng.random() < 0.1:
                words[i], words[i + 1] = words[i + 1], words[i]
                i += 1
            i += 1
    return " ".join(words)


# --------------------------------------------------------------------------- per epoch


class AugmentedInputs(Sequence):
    """Prepared encoder inputs of some rows, augmented afresh each epoch (see :meth:`set_epoch`).

    Args:
        values: one decoded value per row (``None`` where the modality is absent).
        encoder: the built-in encoder being trained (its ``prepare`` makes the model input).
        transforms: the modality's transforms to apply.
        seed: the run's seed.
    """

    def __init__(self, values: list[Any], encoder: Any, transforms: Sequence[str], seed: int):
        self.encoder = encoder
        self.transforms = tuple(transforms)
        self.seed = seed
        self.epoch = 0
        self.values = [self._fixed(v) for v in values]

    def _fixed(self, value: Any) -> Any:
        """What is kept per row: an audio clip already cropped to the encoder's length (the
        window the encoder would take), so that a shift moves the sound inside what it sees."""
        if value is not None and self.encoder.modality == "audio":
            from core.encoders.audio_cnn import crop_or_pad

            return crop_or_pad(value, self.encoder.clip_samples)
        return value

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        value = self.values[index]
        if value is None:
            return None
        rng = np.random.default_rng([self.seed % 2**32, self.epoch, index])
        modality, encoder = self.encoder.modality, self.encoder
        if modality == "image":
            return encoder.prepare(augment_image(value, self.transforms, rng))
        if modality == "text":
            return encoder.prepare(augment_text(value, self.transforms, rng, encoder.tokenize))
        from core.io import SAMPLE_RATE

        logmel = encoder.spectrogram(augment_waveform(value, self.transforms, rng, SAMPLE_RATE))
        if "specaugment" in self.transforms:
            logmel = spec_augment(logmel, rng, encoder.floor_db)
        return encoder.prepare_spectrogram(logmel)


def set_epoch(inputs: dict[str, Sequence[Any]], epoch: int) -> None:
    """Tell every augmented input of a training set which epoch is starting."""
    for values in inputs.values():
        if isinstance(values, AugmentedInputs):
            values.set_epoch(epoch)
