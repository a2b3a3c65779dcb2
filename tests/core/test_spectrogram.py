import warnings

import librosa
import numpy as np
import pytest

from core.figures.inputs import audio_preview_figure
from core.spectrogram import HOP, N_FFT, N_MELS, display_log_mel, frame_seconds, mel_band_centres


def test_display_log_mel_is_librosas_mel_power_in_decibels():
    rng = np.random.default_rng(0)
    clip = rng.normal(size=16_000).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=clip, sr=16_000, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    expected = 10.0 * np.log10(np.maximum(mel, 1e-10))
    got = display_log_mel(clip)
    assert got.dtype == np.float32 and got.shape == (N_MELS, 1 + 16_000 // HOP)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)
    assert frame_seconds(3).tolist() == pytest.approx([0.0, 0.01, 0.02])
    centres = mel_band_centres()
    assert len(centres) == N_MELS and 0 < centres[0] < centres[-1] < 8_000


@pytest.mark.parametrize("length", [1, 100, N_FFT - 1])
def test_a_clip_shorter_than_one_window_is_drawn_without_a_warning(length):
    clip = np.full(length, 0.5, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa warns "n_fft=512 is too large" on unpadded input
        log_mel = display_log_mel(clip)
        figure = audio_preview_figure(clip)
    assert log_mel.shape == (N_MELS, 1 + N_FFT // HOP)
    assert np.isfinite(log_mel).all() and log_mel.max() > -100
    assert f"({length / 16_000:.2f} s)" in figure.layout.title.text
