"""A small log-mel CNN trained from scratch on fixed-length audio clips."""

from __future__ import annotations

from typing import Any

import librosa
import numpy as np
import torch
from torch import nn

from core.encoders.base import Encoder, state_fingerprint
from core.io import SAMPLE_RATE

N_FFT = 512
HOP_LENGTH = 160
FLOOR_DB = -100.0
"""Log-mel value of digital silence (power floor 1e-10): what zero padding becomes."""


def crop_or_pad(waveform: np.ndarray, n_samples: int) -> np.ndarray:
    """Exactly ``n_samples`` of a waveform, deterministically.

    A longer waveform keeps the ``n_samples`` window with the most energy (the
    earliest one on ties), so a short word inside a long recording is not cut
    away; a shorter one is zero-padded equally on both sides.

    Args:
        waveform: mono ``float32`` samples, shape (T,).
        n_samples: output length.

    Returns:
        ``float32`` array of shape (n_samples,).
    """
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if waveform.size > n_samples:
        energy = np.concatenate(([0.0], np.cumsum(waveform.astype(np.float64) ** 2)))
        window_energy = energy[n_samples:] - energy[:-n_samples]
        start = int(np.argmax(window_energy))
        return waveform[start : start + n_samples].copy()
    missing = n_samples - waveform.size
    return np.pad(waveform, (missing // 2, missing - missing // 2))


class BuiltinAudioEncoder(Encoder):
    """Three narrow conv blocks (each followed by a 2x2 max-pool) over a 40-band log-mel
    spectrogram of a fixed-length clip; the feature map is max-pooled over time only, so
    the embedding keeps the frequency layout but does not care where in the clip the
    sound is, then a linear layer.

    Args:
        clip_seconds: every waveform is cropped (most energetic window) or padded to this length.
        n_mels: mel bands.
        channels: output channels of the conv blocks; each followed by a 2x2 max-pool.
        out_dim: embedding size.

    Inputs of ``forward``: ``Tensor[B, 1, n_mels, n_frames]``, the normalised log-mel.
    Output: ``Tensor[B, out_dim]``.
    """

    modality = "audio"
    trainable = True
    floor_db = FLOOR_DB

    def __init__(
        self,
        clip_seconds: float = 1.0,
        n_mels: int = 40,
        channels: tuple[int, ...] = (8, 16, 32),
        out_dim: int = 128,
    ):
        super().__init__()
        self.clip_seconds = float(clip_seconds)
        self.n_mels = n_mels
        self.channels = tuple(channels)
        self.out_dim = out_dim
        self.clip_samples = int(round(self.clip_seconds * SAMPLE_RATE))
        self.frame_seconds = HOP_LENGTH / SAMPLE_RATE
        self.n_frames = 1 + self.clip_samples // HOP_LENGTH
        # Computed once: librosa would rebuild the filterbank on every call.
        self._mel_basis = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels).astype(np.float32)
        self._mel_bases: dict[torch.device, torch.Tensor] = {}  # the filterbank on each device used (not weights)
        layers: list[nn.Module] = []
        in_channels = 1
        for width in self.channels:
            # GroupNorm keeps each embedding independent of the rest of the batch.
            layers += [
                nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=False),
                nn.GroupNorm(min(8, width), width),
                nn.ReLU(inplace=True),
            ]
            layers.append(nn.MaxPool2d(2))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_channels * (n_mels // 2 ** len(self.channels)), out_dim)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "builtin",
            "clip_seconds": self.clip_seconds,
            "n_mels": self.n_mels,
            "channels": list(self.channels),
            "out_dim": self.out_dim,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> BuiltinAudioEncoder:
        return cls(
            clip_seconds=spec["clip_seconds"],
            n_mels=spec["n_mels"],
            channels=tuple(spec["channels"]),
            out_dim=spec["out_dim"],
        )

    def spectrogram(self, waveform: np.ndarray) -> np.ndarray:
        """The log-mel (dB, floor ``FLOOR_DB``) of the cropped/padded clip the CNN sees.

        Args:
            waveform: mono ``float32`` at 16 kHz, any length.

        Returns:
            ``float32`` array (n_mels, n_frames); frame ``i`` is centred at ``i * frame_seconds``.
        """
        clip = crop_or_pad(waveform, self.clip_samples)
        # C order matters: OpenBLAS's threaded path takes ~1000x longer on this Fortran-ordered
        # STFT output when more than one thread is busy (measured 22 ms vs 0.03 ms per clip).
        power = np.ascontiguousarray(np.abs(librosa.stft(clip, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True)) ** 2)
        mel = self._mel_basis @ power
        # Clamped after the log too: float32 rounding would put silence a hair below the floor.
        return np.maximum(10.0 * np.log10(np.maximum(mel, 1e-10)), FLOOR_DB).astype(np.float32)

    def prepare_spectrogram(self, logmel: np.ndarray) -> torch.Tensor:
        """Log-mel from :meth:`spectrogram` (possibly masked) -> ``Tensor[1, n_mels, n_frames]``.

        The normalisation is a fixed affine map (no dataset statistics), so masking a
        region to ``floor_db`` means "silence" to the network.
        """
        normalised = (np.asarray(logmel, dtype=np.float32) + 40.0) / 40.0
        return torch.from_numpy(normalised).unsqueeze(0)

    def prepare(self, value: np.ndarray) -> torch.Tensor:
        """Waveform (T,) at 16 kHz -> ``Tensor[1, n_mels, n_frames]``."""
        return self.prepare_spectrogram(self.spectrogram(value))

    def log_mel(self, clips: torch.Tensor) -> torch.Tensor:
        """:meth:`spectrogram` in torch, for a batch on any device: cropped or padded clips
        ``[B, clip_samples]`` -> log-mel ``[B, n_mels, n_frames]`` (dB, floor ``FLOOR_DB``).

        The same periodic Hann window, zero-padded centred frames, power spectrum and mel
        filterbank as the librosa path; equal to it within float32 rounding.
        """
        device = clips.device
        window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float32, device=device)
        stft = torch.stft(
            clips.float(), N_FFT, hop_length=HOP_LENGTH, window=window, center=True, pad_mode="constant", return_complex=True
        )
        basis = self._mel_bases.get(device)
        if basis is None:
            basis = self._mel_bases[device] = torch.from_numpy(self._mel_basis).to(device)
        mel = basis @ stft.abs().square()
        return torch.clamp(10.0 * torch.log10(torch.clamp(mel, min=1e-10)), min=FLOOR_DB)

    def prepares_on(self, device: torch.device) -> bool:
        return device.type == "cuda"  # a GPU computes a batch of STFTs far faster than librosa on one core

    def prepare_batch(self, values: list[np.ndarray], device: torch.device) -> torch.Tensor:
        """Waveforms -> ``Tensor[B, 1, n_mels, n_frames]``: log-mels on a GPU with :meth:`log_mel`,
        elsewhere one by one with librosa (:meth:`prepare`)."""
        if not self.prepares_on(device):
            return super().prepare_batch(values, device)
        clips = torch.from_numpy(np.stack([crop_or_pad(v, self.clip_samples) for v in values])).to(device)
        return ((self.log_mel(clips) + 40.0) / 40.0).unsqueeze(1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        features = self.features(batch).amax(dim=3)  # [B, C, F'] : max over time
        return self.head(features.flatten(1))

    def cache_id(self) -> str:
        return f"builtin-audio:{state_fingerprint(self, self.spec())}"
