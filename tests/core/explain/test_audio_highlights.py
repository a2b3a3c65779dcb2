"""Cutting the most important audio segments into one clip."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ExplanationError
from core.explain.audio_highlights import top_audio_segments
from core.explain.result import Explanation

SR = 16_000


def explanation_with(per_frame: np.ndarray, segments: int = 10) -> Explanation:
    frames = len(per_frame)
    return Explanation(
        method="shap",
        target=0,
        target_name="a",
        classes=["a", "b"],
        probabilities=np.array([0.7, 0.3]),
        modality_totals={"audio": float(per_frame.sum())},
        audio=np.tile(per_frame, (4, 1)),
        audio_times=np.arange(frames) * 0.01,
        metadata={"parameters": {"audio_time_segments": segments}},
    )


def test_keeps_the_top_segments_in_time_order():
    per_frame = np.zeros(100)
    per_frame[70:80] = 2.0  # strongest
    per_frame[20:30] = 1.0
    per_frame[40:50] = -3.0  # against the class: never played
    waveform = np.linspace(-1, 1, SR).astype(np.float32)
    result = top_audio_segments(explanation_with(per_frame), waveform, k=3)
    assert [(round(a, 3), round(b, 3)) for a, b, _ in result.spans] == [(0.195, 0.295), (0.695, 0.795)]
    gap = int(0.08 * SR)
    assert len(result.clip) == int(0.295 * SR) - int(0.195 * SR) + gap + int(0.795 * SR) - int(0.695 * SR)
    np.testing.assert_array_equal(result.clip[:10], waveform[int(0.195 * SR) : int(0.195 * SR) + 10])


def test_nothing_for_the_class_gives_an_empty_clip():
    result = top_audio_segments(explanation_with(-np.ones(100)), np.zeros(SR, np.float32), k=2)
    assert result.spans == [] and result.clip.size == 0


def test_fixed_length_encoders_are_aligned_to_their_window():
    class FixedWindow:
        clip_samples = SR // 2

    per_frame = np.zeros(50)
    per_frame[:5] = 1.0
    waveform = np.zeros(SR, np.float32)
    waveform[SR // 2 :] = 0.5  # the loudest half-second window is the second half
    result = top_audio_segments(explanation_with(per_frame, segments=10), waveform, k=1, encoder=FixedWindow())
    assert np.all(result.clip == 0.5)


def test_requires_an_audio_attribution():
    explanation = explanation_with(np.ones(10))
    explanation.audio = None
    with pytest.raises(ExplanationError, match="no audio"):
        top_audio_segments(explanation, np.zeros(SR, np.float32))
