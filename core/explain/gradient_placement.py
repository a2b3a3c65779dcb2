"""Where gradient attributions land: on the original image, the words and the audio grid.

Gradient methods attribute the tensors encoders read (a resized image, log-mel frames,
word pieces); these helpers spread those attributions back onto the grids SHAP and LIME
results use, keeping totals, so every method's maps and segment scores compare one to one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.encoders.base import Encoder
from core.explain.segmentation import AudioSegmentation


def overlap_matrix(n_in: int, start: float, stop: float, n_out: int) -> np.ndarray:
    """``[n_in, n_out]``: the share of input cell ``p`` (cells tile ``[start, stop)``
    evenly) that falls on output cell ``q`` (cells ``[q, q + 1)``).

    Each row sums to 1 when ``[start, stop]`` lies inside ``[0, n_out]``: multiplying by
    it spreads values without changing their total.
    """
    edges = start + (stop - start) * np.arange(n_in + 1, dtype=np.float64) / n_in
    low = np.maximum(edges[:-1, None], np.arange(n_out)[None, :])
    high = np.minimum(edges[1:, None], np.arange(1, n_out + 1)[None, :])
    share = np.clip(high - low, 0.0, None) / ((stop - start) / n_in)
    sums = share.sum(axis=1, keepdims=True)
    return np.divide(share, sums, out=np.zeros_like(share), where=sums > 0)


def spread_image(grid: np.ndarray, box: tuple[float, float, float, float], height: int, width: int) -> np.ndarray:
    """An attribution ``grid [h, w]`` over the image region ``box = (left, top, right,
    bottom)`` (original pixel coordinates) -> ``[height, width]`` map with the same sum."""
    left, top, right, bottom = box
    rows = overlap_matrix(grid.shape[0], top, bottom, height)
    cols = overlap_matrix(grid.shape[1], left, right, width)
    return rows.T @ np.asarray(grid, dtype=np.float64) @ cols


def _shortest_edge_crop_box(width: int, height: int, short: int, crop_w: int, crop_h: int) -> tuple:
    """Region of the original image a "resize shorter side to ``short``, centre crop" keeps."""
    scale = short / min(width, height)
    resized_w = max(short, round(width * scale))
    resized_h = max(short, round(height * scale))
    left = (resized_w - crop_w) // 2
    top = (resized_h - crop_h) // 2
    sx, sy = width / resized_w, height / resized_h
    return (
        max(0.0, left * sx),
        max(0.0, top * sy),
        min(float(width), (left + crop_w) * sx),
        min(float(height), (top + crop_h) * sy),
    )


def _size_field(size: Any, name: str) -> Any:
    """A field of an image processor's size: a dict in older transformers, a ``SizeDict`` in newer."""
    if size is None:
        return None
    if isinstance(size, dict):
        return size.get(name)
    return getattr(size, name, None)


def image_box(encoder: Encoder, height: int, width: int) -> tuple[float, float, float, float]:
    """The region of an original ``height x width`` image that the encoder's prepared input covers."""
    from core.encoders.efficientnet import IMAGE_SIZE, EfficientNetLite0Encoder

    if isinstance(encoder, EfficientNetLite0Encoder):
        return _shortest_edge_crop_box(width, height, IMAGE_SIZE, IMAGE_SIZE, IMAGE_SIZE)
    processor = getattr(encoder, "processor", None)
    if processor is not None and getattr(processor, "do_center_crop", False):
        short = _size_field(getattr(processor, "size", None), "shortest_edge")
        crop = getattr(processor, "crop_size", None)
        crop_h, crop_w = _size_field(crop, "height"), _size_field(crop, "width")
        if short and crop_h and crop_w:
            return _shortest_edge_crop_box(width, height, int(short), int(crop_w), int(crop_h))
    return (0.0, 0.0, float(width), float(height))


def segment_sums(labels: np.ndarray, values: np.ndarray, n_segments: int) -> np.ndarray:
    return np.bincount(np.asarray(labels).ravel(), np.asarray(values, dtype=np.float64).ravel(), minlength=n_segments)


def frames_to_grid(
    values: np.ndarray, frame_of: np.ndarray, n_bands_in: int, segmentation: AudioSegmentation
) -> np.ndarray:
    """Per (band, frame) values of a feature grid -> the segmentation's ``[n_mels, frames]`` grid.

    ``values [n_bands_in, n_frames_in]``; ``frame_of [n_frames_in]`` the display frame of
    each input frame (clipped to the grid: anything past the clip lands on the last frame,
    so the total is kept); bands are spread by overlap of equal mel-scale ranges.
    """
    n_mels, n_frames = segmentation.spectrogram.shape
    by_frame = np.zeros((n_bands_in, n_frames))
    np.add.at(by_frame, (slice(None), np.clip(frame_of, 0, n_frames - 1)), values)
    return overlap_matrix(n_bands_in, 0.0, float(n_mels), n_mels).T @ by_frame
