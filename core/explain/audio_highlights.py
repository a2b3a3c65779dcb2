"""The most important stretches of an explained audio clip, cut into one listenable clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.encoders.audio_cnn import crop_or_pad
from core.encoders.base import Encoder
from core.errors import ExplanationError
from core.explain.result import Explanation
from core.io import SAMPLE_RATE


@dataclass
class AudioHighlights:
    """Top time segments of an audio explanation.

    Attributes:
        clip: the segments' samples joined in time order, separated by short silences.
        spans: ``[(start_s, end_s, score)]`` in time order, seconds of the clip the
            encoder saw; ``score`` is the summed attribution for the explained class.
    """

    clip: np.ndarray
    spans: list[tuple[float, float, float]]


def encoder_view(waveform: np.ndarray, encoder: Encoder | None = None) -> np.ndarray:
    """The waveform as ``encoder`` sees it: fixed-length encoders (``clip_samples``) crop
    or pad it first, and explanation times refer to that clip."""
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    clip_samples = getattr(encoder, "clip_samples", None)
    return crop_or_pad(waveform, clip_samples) if clip_samples else waveform


def top_audio_segments(
    explanation: Explanation,
    waveform: np.ndarray,
    *,
    k: int = 3,
    n_segments: int | None = None,
    encoder: Encoder | None = None,
    sample_rate: int = SAMPLE_RATE,
    gap_seconds: float = 0.08,
) -> AudioHighlights:
    """Cut the ``k`` time segments with the highest positive attribution out of ``waveform``.

    Args:
        explanation: a SHAP or LIME explanation with an audio map ``[n_mels, frames]``.
        waveform: the explained mono waveform at ``sample_rate``.
        k: how many segments to keep (fewer when fewer have positive attribution).
        n_segments: equal time slices the clip is ranked in; default: the explanation's
            ``audio_time_segments`` parameter (the slices the method perturbed).
        encoder: the model's audio encoder, whose input window the explanation's times refer to.
        gap_seconds: silence between joined segments, so their boundaries are audible.

    Returns:
        :class:`AudioHighlights`; an empty clip when no segment speaks for the class.
    """
    if explanation.audio is None or explanation.audio_times is None:
        raise ExplanationError("This explanation has no audio attributions.")
    if k < 1:
        raise ExplanationError("k must be at least 1.")
    audio = encoder_view(waveform, encoder)
    per_frame = np.asarray(explanation.audio, dtype=np.float64).sum(axis=0)
    times = np.asarray(explanation.audio_times, dtype=np.float64)
    if n_segments is None:
        n_segments = int(explanation.metadata.get("parameters", {}).get("audio_time_segments", 10))
    n_segments = max(1, min(n_segments, len(per_frame)))
    slices = np.array_split(np.arange(len(per_frame)), n_segments)
    scores = np.array([per_frame[s].sum() for s in slices])
    ranked = [i for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0]
    frame_step = float(times[1] - times[0]) if len(times) > 1 else len(audio) / sample_rate
    duration = len(audio) / sample_rate
    spans = []
    for i in sorted(ranked):
        start = max(0.0, float(times[slices[i][0]]) - frame_step / 2)
        end = min(duration, float(times[slices[i][-1]]) + frame_step / 2)
        if end > start:
            spans.append((start, end, float(scores[i])))
    gap = np.zeros(int(gap_seconds * sample_rate), dtype=np.float32)
    pieces: list[np.ndarray] = []
    for start, end, _ in spans:
        if pieces:
            pieces.append(gap)
        pieces.append(audio[int(start * sample_rate) : int(end * sample_rate)])
    clip = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return AudioHighlights(clip=clip.astype(np.float32), spans=spans)
