"""The log-mel spectrogram drawn for a clip: the Predict preview and the maps of waveform explanations.

For the eye only; an encoder computes its own input. The frames match the builtin audio
CNN's (``n_fft`` 512, hop 160 at 16 kHz, 64 mel bands).
"""

from __future__ import annotations

import librosa
import numpy as np

from core.io import SAMPLE_RATE

N_FFT = 512
HOP = 160
N_MELS = 64


def display_log_mel(waveform: np.ndarray) -> np.ndarray:
    """``float32 [N_MELS, frames]`` power in dB (floor -100 dB) of a mono 16 kHz clip; frame ``i``
    is centred on sample ``i * HOP``.

    A clip shorter than one window (a hostile one-sample upload, say) is zero-padded to it at
    the end, which is what librosa would do after warning.
    """
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if len(waveform) < N_FFT:
        waveform = np.pad(waveform, (0, N_FFT - len(waveform)))
    power = np.abs(librosa.stft(waveform, n_fft=N_FFT, hop_length=HOP, center=True)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=SAMPLE_RATE, n_mels=N_MELS)
    return (10.0 * np.log10(np.maximum(mel, 1e-10))).astype(np.float32)


def frame_seconds(frames: int) -> np.ndarray:
    """Centre time (s) of each of ``frames`` display frames."""
    return np.arange(frames) * HOP / SAMPLE_RATE


def mel_band_centres(n_mels: int = N_MELS) -> np.ndarray:
    """Centre frequency (Hz) of each of ``n_mels`` mel bands up to the Nyquist frequency at 16 kHz."""
    return librosa.mel_frequencies(n_mels=n_mels + 2, fmax=SAMPLE_RATE / 2)[1:-1]
