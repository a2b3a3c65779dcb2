"""Resemblyzer's GE2E speaker encoder (256-d voice embeddings), batched."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from core.encoders.base import FrozenEncoder
from core.errors import EncoderLoadError

MIN_TRIMMED_SECONDS = 0.1
"""Voice-activity trimming that leaves less than this keeps the untrimmed clip instead
(a single short word can be judged silence and trimmed to nothing)."""


def _resemblyzer() -> Any:
    try:
        with warnings.catch_warnings():
            # resemblyzer imports the deprecated scipy.ndimage.morphology namespace.
            warnings.simplefilter("ignore", DeprecationWarning)
            import resemblyzer
            from resemblyzer import audio, hparams, voice_encoder
    except ImportError as err:
        raise EncoderLoadError(
            f"The 'resemblyzer' audio encoder needs the resemblyzer and webrtcvad-wheels packages ({err})."
        ) from None
    return resemblyzer, audio, hparams, voice_encoder


class ResemblyzerAudioEncoder(FrozenEncoder):
    """Frozen GE2E speaker encoder (3-layer LSTM over 40-band mel frames), 256-d, unit norm.

    Same numbers as ``resemblyzer.VoiceEncoder.embed_utterance``, but batched: ``prepare``
    cuts each utterance into 1.6 s partial windows (as resemblyzer does), ``collate``
    concatenates the partials of all utterances, and ``forward`` runs the LSTM once over
    all of them and averages each utterance's partial embeddings. The network is rebuilt
    here rather than through ``VoiceEncoder`` so the weights load with
    ``weights_only=True`` and nothing is printed.

    Args:
        trim_silence: shorten long silences with webrtcvad first (resemblyzer's default).

    Inputs of ``forward``: ``{"mels": Tensor[N, 160, 40], "counts": LongTensor[B]}``, N the
    total number of partial windows, ``counts[i]`` those of utterance ``i``.
    Output: ``Tensor[B, 256]``.
    """

    modality = "audio"

    def __init__(self, trim_silence: bool = True):
        super().__init__()
        resemblyzer, self._audio, hp, voice_encoder = _resemblyzer()
        self._hp = hp
        self._partial_slices = voice_encoder.VoiceEncoder.compute_partial_slices
        self.trim_silence = trim_silence
        self.out_dim = hp.model_embedding_size
        self.lstm = nn.LSTM(hp.mel_n_channels, hp.model_hidden_size, hp.model_num_layers, batch_first=True)
        self.linear = nn.Linear(hp.model_hidden_size, hp.model_embedding_size)
        self.weights_path = Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"
        if not self.weights_path.exists():
            raise EncoderLoadError(f"Resemblyzer's pretrained weights are missing: {self.weights_path}.")
        checkpoint = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        # The checkpoint also holds GE2E loss parameters (similarity_*) used only in training.
        state = {k: v for k, v in checkpoint["model_state"].items() if k.startswith(("lstm.", "linear."))}
        self.load_state_dict(state)
        self.freeze()

    def spec(self) -> dict[str, Any]:
        return {"kind": "resemblyzer", "trim_silence": self.trim_silence}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> ResemblyzerAudioEncoder:
        return cls(trim_silence=spec.get("trim_silence", True))

    def cache_id(self) -> str:
        signature = f"{self.weights_path.stat().st_size}:{self.trim_silence}:{MIN_TRIMMED_SECONDS}"
        return f"resemblyzer:{hashlib.sha256(signature.encode()).hexdigest()[:16]}"

    def preprocess(self, waveform: np.ndarray) -> np.ndarray:
        """Resemblyzer's ``preprocess_wav`` for 16 kHz input: volume up to -30 dBFS, silences trimmed.

        Digital silence is left as is (its volume cannot be normalised), and a trim that
        leaves under ``MIN_TRIMMED_SECONDS`` is undone.
        """
        wav = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if np.sqrt(np.mean(wav.astype(np.float64) ** 2)) > 1e-8:
            wav = self._audio.normalize_volume(wav, self._hp.audio_norm_target_dBFS, increase_only=True)
        if self.trim_silence:
            trimmed = self._audio.trim_long_silences(wav)
            if trimmed.size >= MIN_TRIMMED_SECONDS * self._hp.sampling_rate:
                wav = trimmed
        return wav.astype(np.float32)

    def prepare(self, value: np.ndarray) -> torch.Tensor:
        """Waveform (T,) at 16 kHz -> the mel frames of its partial windows, ``Tensor[n, 160, 40]``."""
        wav = self.preprocess(value)
        # Same windows as VoiceEncoder.embed_utterance (1.3 partials per second, 75 % coverage).
        wav_slices, mel_slices = self._partial_slices(len(wav), 1.3, 0.75)
        needed = wav_slices[-1].stop
        if needed >= len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = self._audio.wav_to_mel_spectrogram(wav)
        return torch.from_numpy(np.stack([mel[s] for s in mel_slices]))

    def collate(self, items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            "mels": torch.cat(items),
            "counts": torch.tensor([len(item) for item in items], dtype=torch.long),
        }

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mels, counts = batch["mels"], batch["counts"]
        # A packed sequence (every window is 160 frames) steers the CPU LSTM off the oneDNN
        # path, which spends seconds building a kernel for every new batch size: here the
        # number of windows changes with nearly every batch.
        lengths = torch.full((len(mels),), mels.shape[1], dtype=torch.long)
        _, (hidden, _) = self.lstm(pack_padded_sequence(mels.float(), lengths, batch_first=True))
        partial = torch.relu(self.linear(hidden[-1]))
        partial = partial / partial.norm(dim=1, keepdim=True).clamp(min=1e-12)
        owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
        summed = torch.zeros(len(counts), partial.shape[1], device=partial.device, dtype=partial.dtype)
        summed.index_add_(0, owner, partial)
        return torch.nn.functional.normalize(summed / counts.unsqueeze(1).to(partial.dtype), dim=1)
