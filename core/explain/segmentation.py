"""The units explanations perturb: image superpixels, text tokens, audio time x frequency segments.

Each segmentation turns a 0/1 mask over its segments into the perturbed value the
encoder reads (``compose``) and spreads per-segment scores back over the original
input (``to_map``). Segmentations are cached per (content hash, settings), so SHAP,
LIME and the quality checks of one sample share them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from skimage.filters import gaussian
from skimage.segmentation import slic

from core import spectrogram
from core.encoders.base import Encoder
from core.explain.params import ExplainParams
from core.hashing import content_hash
from core.io import SAMPLE_RATE


@dataclass(frozen=True)
class ImageSegmentation:
    """Superpixels of one image.

    Attributes:
        image: ``uint8 [H, W, 3]`` the original image.
        labels: ``int [H, W]`` segment index of each pixel, ``0 .. n_segments - 1``.
        baseline: ``uint8 [H, W, 3]`` what removed segments show (blur or segment mean).
    """

    image: np.ndarray
    labels: np.ndarray
    baseline: np.ndarray

    @property
    def n_segments(self) -> int:
        return int(self.labels.max()) + 1

    def compose(self, masks: np.ndarray) -> list[np.ndarray]:
        """``masks [N, n_segments]`` (1 = keep) -> N perturbed ``uint8 [H, W, 3]`` images."""
        keep = np.asarray(masks, dtype=bool)[:, self.labels][..., None]
        return list(np.where(keep, self.image[None], self.baseline[None]))

    def to_map(self, scores: np.ndarray) -> np.ndarray:
        """``[n_segments]`` scores -> ``[H, W]`` map."""
        return np.asarray(scores, dtype=np.float64)[self.labels]

    def positions(self) -> np.ndarray:
        """``[n_segments, 2]`` superpixel centroids (row, column), scaled to [0, 1]."""
        return label_centroids(self.labels)


@dataclass(frozen=True)
class TextSegmentation:
    """Tokens of one text as its encoder splits them; removed tokens are dropped."""

    tokens: tuple[str, ...]

    @property
    def n_segments(self) -> int:
        return len(self.tokens)

    def compose(self, masks: np.ndarray) -> list[str]:
        """``masks [N, n_tokens]`` -> N texts made of the kept tokens joined by spaces."""
        return [
            " ".join(t for t, keep in zip(self.tokens, row, strict=True) if keep)
            for row in np.asarray(masks, dtype=bool)
        ]

    def to_map(self, scores: np.ndarray) -> list[tuple[str, float]]:
        return [(t, float(s)) for t, s in zip(self.tokens, scores, strict=True)]

    def positions(self) -> np.ndarray:
        """``[n_tokens, 1]`` token positions in the text, scaled to [0, 1]."""
        return (np.arange(self.n_segments, dtype=np.float64) / max(1, self.n_segments - 1)).reshape(-1, 1)


@dataclass(frozen=True)
class AudioSegmentation:
    """Time (x frequency) segments of one audio clip.

    ``domain == "spectrogram"`` (builtin log-mel encoder): segments are time x mel-band
    blocks of the encoder's log-mel and removed blocks become ``floor_db`` (silence).
    ``domain == "waveform"``: segments are time slices of the waveform, removed ones zeroed.

    Attributes:
        spectrogram: ``[n_mels, frames]`` log-mel in dB (the encoder's own for the builtin CNN).
        labels: ``int [n_mels, frames]`` segment index of each cell.
        times: ``[frames]`` frame centres in seconds; freqs: ``[n_mels]`` band centres in Hz.
        waveform: the waveform (waveform domain); sample_labels: ``int [T]`` its segment indices.
    """

    domain: str
    spectrogram: np.ndarray
    labels: np.ndarray
    times: np.ndarray
    freqs: np.ndarray
    floor_db: float = -100.0
    waveform: np.ndarray | None = None
    sample_labels: np.ndarray | None = None

    @property
    def n_segments(self) -> int:
        return int(self.labels.max()) + 1

    def compose(self, masks: np.ndarray) -> list[np.ndarray]:
        """``masks [N, n_segments]`` -> N masked log-mels (spectrogram) or waveforms."""
        keep = np.asarray(masks, dtype=bool)
        if self.domain == "spectrogram":
            return list(np.where(keep[:, self.labels], self.spectrogram[None], np.float32(self.floor_db)))
        assert self.waveform is not None and self.sample_labels is not None
        return list(self.waveform[None] * keep[:, self.sample_labels].astype(np.float32))

    def to_map(self, scores: np.ndarray) -> np.ndarray:
        """``[n_segments]`` scores -> ``[n_mels, frames]`` map."""
        return np.asarray(scores, dtype=np.float64)[self.labels]

    def positions(self) -> np.ndarray:
        """``[n_segments, 2]`` segment centres (mel band, frame), scaled to [0, 1]."""
        return label_centroids(self.labels)


Segmentation = ImageSegmentation | TextSegmentation | AudioSegmentation


def label_centroids(labels: np.ndarray) -> np.ndarray:
    """``[n_labels, 2]`` mean (row, column) of each label of a 2-D label grid, scaled to [0, 1]."""
    rows, cols = np.indices(labels.shape, dtype=np.float64)
    counts = np.bincount(labels.ravel()).astype(np.float64)
    centroid_rows = np.bincount(labels.ravel(), rows.ravel()) / counts / max(1, labels.shape[0] - 1)
    centroid_cols = np.bincount(labels.ravel(), cols.ravel()) / counts / max(1, labels.shape[1] - 1)
    return np.stack([centroid_rows, centroid_cols], axis=1)


def uses_spectrogram_masking(encoder: Encoder) -> bool:
    """True for encoders that read a log-mel they expose (the builtin audio CNN)."""
    return hasattr(encoder, "spectrogram") and hasattr(encoder, "prepare_spectrogram")


def composed_prepare(encoder: Encoder, segmentation: Segmentation) -> Any:
    """How ``encoder`` prepares what ``segmentation.compose`` returns: masked log-mels go
    through ``prepare_spectrogram``, every other perturbed value through ``prepare``."""
    if getattr(segmentation, "domain", "") == "spectrogram" and uses_spectrogram_masking(encoder):
        return encoder.prepare_spectrogram
    return encoder.prepare


def segment_image(image: np.ndarray, params: ExplainParams) -> ImageSegmentation:
    """Superpixels (SLIC, or a square grid) and the removal baseline of an RGB image."""
    image = np.asarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    side = max(1, int(round(np.sqrt(params.image_segments))))
    raw = _split_index(height, side)[:, None] * side + _split_index(width, side)[None, :]
    if params.image_segmentation == "slic":
        superpixels = slic(image, n_segments=params.image_segments, compactness=10.0, start_label=0, channel_axis=-1)
        # SLIC can merge texture-less or noisy images into a handful of regions; a grid is
        # more useful to explain than one segment covering everything.
        if len(np.unique(superpixels)) >= max(2, params.image_segments // 4):
            raw = superpixels
    labels = np.unique(raw, return_inverse=True)[1].reshape(height, width)
    if params.image_baseline == "blur":
        sigma = max(height, width) / 16.0
        baseline = gaussian(image, sigma=sigma, channel_axis=-1, preserve_range=True)
    else:
        sums = np.zeros((labels.max() + 1, 3))
        np.add.at(sums, labels, image.astype(np.float64))
        baseline = (sums / np.bincount(labels.ravel())[:, None])[labels]
    return ImageSegmentation(image, labels, np.clip(np.round(baseline), 0, 255).astype(np.uint8))


def segment_text(text: str, encoder: Encoder) -> TextSegmentation:
    """The encoder's own word split (``encoder.tokenize``), else whitespace words."""
    tokenize = getattr(encoder, "tokenize", None)
    return TextSegmentation(tuple(tokenize(text) if tokenize is not None else text.split()))


def _split_index(length: int, parts: int) -> np.ndarray:
    """``int [length]``: which of ``parts`` near-equal consecutive chunks each position falls in."""
    parts = max(1, min(parts, length))
    return np.minimum(np.arange(length) * parts // length, parts - 1)


def segment_audio(waveform: np.ndarray, encoder: Encoder, params: ExplainParams) -> AudioSegmentation:
    """Time x mel-band blocks of the builtin encoder's log-mel, or time slices of the waveform."""
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if uses_spectrogram_masking(encoder):
        logmel = np.asarray(encoder.spectrogram(waveform), dtype=np.float32)
        n_mels, frames = logmel.shape
        time_index = _split_index(frames, params.audio_time_segments)
        band_index = _split_index(n_mels, params.audio_freq_bands)
        labels = time_index[None, :] * (band_index.max() + 1) + band_index[:, None]
        hop_seconds = float(getattr(encoder, "frame_seconds", spectrogram.HOP / SAMPLE_RATE))
        return AudioSegmentation(
            domain="spectrogram",
            spectrogram=logmel,
            labels=labels,
            times=np.arange(frames) * hop_seconds,
            freqs=spectrogram.mel_band_centres(n_mels),
            floor_db=float(getattr(encoder, "floor_db", -100.0)),
        )
    logmel = spectrogram.display_log_mel(waveform)
    frames = logmel.shape[1]
    sample_labels = _split_index(len(waveform), params.audio_time_segments)
    frame_labels = sample_labels[np.minimum(np.arange(frames) * spectrogram.HOP, len(waveform) - 1)]
    return AudioSegmentation(
        domain="waveform",
        spectrogram=logmel,
        labels=np.broadcast_to(frame_labels, logmel.shape).copy(),
        times=spectrogram.frame_seconds(frames),
        freqs=spectrogram.mel_band_centres(),
        waveform=waveform,
        sample_labels=sample_labels,
    )


class SegmentationCache:
    """Thread-safe LRU of segmentations keyed by (modality, content hash, settings, encoder kind)."""

    def __init__(self, max_entries: int = 128):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, Segmentation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, modality: str, value: Any, encoder: Encoder, params: ExplainParams) -> Segmentation:
        key = _cache_key(modality, value, encoder, params)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        if modality == "image":
            segmentation: Segmentation = segment_image(value, params)
        elif modality == "text":
            segmentation = segment_text(value, encoder)
        else:
            segmentation = segment_audio(value, encoder, params)
        with self._lock:
            self._entries[key] = segmentation
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return segmentation

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _cache_key(modality: str, value: Any, encoder: Encoder, params: ExplainParams) -> tuple:
    if modality == "image":
        settings: tuple = (params.image_segments, params.image_segmentation, params.image_baseline)
        encoder_kind = ""
    elif modality == "text":
        settings = ()
        encoder_kind = type(encoder).__name__ + str(getattr(encoder, "name", ""))
    else:
        settings = (params.audio_time_segments, params.audio_freq_bands)
        encoder_kind = type(encoder).__name__ + str(
            (getattr(encoder, "clip_seconds", None), getattr(encoder, "n_mels", None))
        )
    return modality, content_hash(value), settings, encoder_kind


SEGMENTATIONS = SegmentationCache()
"""The process-wide cache every explanation uses."""
