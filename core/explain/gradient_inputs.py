"""What gradient methods attribute in each modality, and what "removed" means there.

One :class:`ModalityInput` per modality: the tensor in the form its encoder reads it, the
baseline, a differentiable ``embed`` from that tensor to the encoder's output, and a
``place`` that puts an attribution back on the sample's segmentation grids
(:mod:`core.explain.gradient_placement`).

What is attributed, and the baseline (what "removed" means), per encoder:

========================  ===============================  ==========================================
encoder                   attributed tensor                baseline
========================  ===============================  ==========================================
builtin image CNN,        the prepared image the encoder   the prepared *removed* image of SHAP and
efficientnet, hf image    reads (``[C, h, w]``)            the quality checks: ``ExplainParams.
                                                           image_baseline`` (Gaussian blur, or the
                                                           superpixel mean colour)
builtin audio CNN         its normalised log-mel           ``floor_db`` everywhere (digital silence,
                          ``[1, n_mels, frames]``          what SHAP's removed blocks become)
resemblyzer               its mel frames of each 1.6 s     zeros (the power mel of silence);
                          partial window ``[P, 160, 40]``  silences its VAD trimmed away get
                                                           no attribution
hf audio                  the feature extractor's output   the extractor's output for an all-zero
                          (waveform or log-mel features)   waveform of the same length (silence)
builtin text CNN          token embeddings (the output of  the padding embedding (row 0, zeros) at
                          its ``nn.Embedding``)            every position: ids and the pad mask stay
hf text                   word-piece embeddings (the       the ``[PAD]`` embedding at every
                          model's input embeddings)        non-special position; [CLS]/[SEP] keep
                                                           theirs (so they get exactly 0)
========================  ===============================  ==========================================

A modality whose input gradients cannot reach in a form that maps back onto the sample
raises :class:`~core.errors.NotDifferentiableError` with the reason; gradient methods hold
it fixed and report it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from core.encoders.base import Encoder
from core.errors import NotDifferentiableError
from core.explain.gradient_placement import frames_to_grid, image_box, segment_sums, spread_image
from core.explain.segmentation import AudioSegmentation, ImageSegmentation, TextSegmentation, uses_spectrogram_masking


@dataclass
class ModalityInput:
    """One modality as Captum sees it.

    Attributes:
        inputs: ``[1, ...]`` the tensor attributed (on the model's device).
        baseline: ``[1, ...]`` what "removed" means for it.
        embed: ``Tensor[N, ...] -> Tensor[N, out_dim]``, differentiable, the encoder's output.
        place: attribution ``[...]`` (numpy, no batch dim) -> (map, segment scores).
        describe: what the tensor and baseline are (goes into the metadata).
        noise: GradientSHAP may add Gaussian noise to it (``False`` for inputs where noise
            leaves the encoder's domain, e.g. resemblyzer's non-negative power mel: its
            unit-normalised partial embeddings have exploding gradients near zero).
    """

    modality: str
    inputs: torch.Tensor
    baseline: torch.Tensor
    embed: Callable[[torch.Tensor], torch.Tensor]
    place: Callable[[np.ndarray], tuple[Any, np.ndarray]]
    describe: dict[str, str] = field(default_factory=dict)
    noise: bool = True


def _expand(tensors: dict[str, torch.Tensor], rows: int) -> dict[str, torch.Tensor]:
    return {k: v.unsqueeze(0).expand(rows, *v.shape) for k, v in tensors.items()}


def _plain_tensor_encoder(encoder: Encoder) -> bool:
    """Encoders whose ``collate`` just stacks prepared tensors (builtin CNNs, efficientnet)."""
    return type(encoder).collate is Encoder.collate


def image_input(encoder: Encoder, image: np.ndarray, segmentation: ImageSegmentation, device) -> ModalityInput:
    prepared = encoder.prepare(image)
    removed = encoder.prepare(segmentation.baseline)
    if isinstance(prepared, dict):
        if set(prepared) != {"pixel_values"}:
            raise NotDifferentiableError(f"the image processor gives {sorted(prepared)}, not just pixel_values")
        x, b = prepared["pixel_values"], removed["pixel_values"]

        def embed(t: torch.Tensor) -> torch.Tensor:
            return encoder({"pixel_values": t})

    elif isinstance(prepared, torch.Tensor) and prepared.is_floating_point() and _plain_tensor_encoder(encoder):
        x, b = prepared, removed
        embed = encoder
    else:
        raise NotDifferentiableError(f"{type(encoder).__name__} does not read a float image tensor")
    if x.dim() != 3:
        raise NotDifferentiableError(f"the prepared image has shape {tuple(x.shape)}, not [C, h, w]")
    height, width = segmentation.image.shape[:2]
    box = image_box(encoder, height, width)

    def place(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grid = attribution.reshape(x.shape).sum(axis=0)
        image_map = spread_image(grid, box, height, width)
        return image_map, segment_sums(segmentation.labels, image_map, segmentation.n_segments)

    return ModalityInput(
        "image",
        x.unsqueeze(0).float().to(device).clone(),
        b.unsqueeze(0).float().to(device).clone(),
        embed,
        place,
        {
            "input": f"prepared image {list(x.shape)} as the encoder reads it",
            "baseline": "the prepared removed image (ExplainParams.image_baseline: blur or superpixel mean)",
        },
    )


def text_input(encoder: Encoder, text: str, segmentation: TextSegmentation, device) -> ModalityInput:
    from core.encoders.hf import HuggingFaceEncoder
    from core.encoders.text_cnn import BuiltinTextEncoder

    words = list(segmentation.tokens)
    if isinstance(encoder, BuiltinTextEncoder):
        return _builtin_text_input(encoder, text, words, device)
    if isinstance(encoder, HuggingFaceEncoder) and encoder.modality == "text":
        return _hf_text_input(encoder, text, words, device)
    raise NotDifferentiableError(f"{type(encoder).__name__} exposes no token-embedding input")


def _word_scores(words: list[str], owners: list[int | None]) -> Callable[[np.ndarray], tuple[list, np.ndarray]]:
    """``place`` for text: each position's attribution (summed over the embedding) goes to the
    word that owns it (``owners[position]``, ``None``: no word, e.g. padding or [CLS])."""

    def place(attribution: np.ndarray) -> tuple[list[tuple[str, float]], np.ndarray]:
        per_position = attribution.sum(axis=-1)
        scores = np.zeros(len(words))
        for position, owner in enumerate(owners):
            if owner is not None and owner < len(words):
                scores[owner] += per_position[position]
        return [(w, float(s)) for w, s in zip(words, scores, strict=True)], scores

    return place


def _builtin_text_input(encoder, text: str, words: list[str], device) -> ModalityInput:
    ids = encoder.prepare(text).to(device)
    with torch.no_grad():
        x = encoder.embedding(ids.unsqueeze(0)).detach().clone()
        b = encoder.embedding.weight[0].detach().expand_as(x).clone()
    owners = [i if i < len(words) else None for i in range(encoder.max_tokens)]

    def embed(t: torch.Tensor) -> torch.Tensor:
        return encoder.from_embeddings(t, ids.unsqueeze(0).expand(t.shape[0], -1))

    return ModalityInput(
        "text",
        x,
        b,
        embed,
        _word_scores(words, owners),
        {
            "input": f"token embeddings [{encoder.max_tokens}, {encoder.embed_dim}] (nn.Embedding output)",
            "baseline": "the padding embedding (row 0) at every position; ids and pad mask unchanged",
        },
    )


def _hf_text_input(encoder, text: str, words: list[str], device) -> ModalityInput:
    from core.encoders.hf import _masked_mean

    model = encoder.model
    if hasattr(model, "get_text_features") or "inputs_embeds" not in inspect.signature(model.forward).parameters:
        raise NotDifferentiableError(f"{type(model).__name__} reads token ids only (no inputs_embeds)")
    prepared = {k: v.to(device) for k, v in encoder.prepare(text).items()}
    input_ids = prepared.pop("input_ids")
    tokenizer = encoder.processor
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    special = torch.tensor(
        tokenizer.get_special_tokens_mask(input_ids.tolist(), already_has_special_tokens=True),
        dtype=torch.bool,
        device=device,
    )
    layer = model.get_input_embeddings()
    with torch.no_grad():
        x = layer(input_ids.unsqueeze(0)).detach().clone()
        pad = layer(torch.full_like(input_ids, pad_id).unsqueeze(0))
        b = torch.where(special[None, :, None], x, pad).detach().clone()
    owners = _hf_word_owners(encoder, text, words, input_ids.tolist(), special.tolist())

    def embed(t: torch.Tensor) -> torch.Tensor:
        rest = _expand(prepared, t.shape[0])
        hidden = model(inputs_embeds=t.to(model.dtype), **rest).last_hidden_state
        pooled = _masked_mean(hidden, rest["attention_mask"]).float()
        return nn.functional.normalize(pooled, dim=-1) if encoder.normalize else pooled

    return ModalityInput(
        "text",
        x,
        b,
        embed,
        _word_scores(words, owners),
        {
            "input": f"word-piece embeddings [{x.shape[1]}, {x.shape[2]}] (the model's input embeddings)",
            "baseline": "the [PAD] embedding at every non-special position; special tokens keep theirs",
        },
    )


def _hf_word_owners(encoder, text: str, words: list[str], ids: list[int], special: list[bool]) -> list[int | None]:
    """For each word piece, the index of the word (``encoder.tokenize``) it belongs to, or ``None``."""
    try:
        encoded = encoder.processor(text, truncation=True, max_length=encoder.max_length)
        owners = list(encoded.word_ids())
        if len(owners) == len(ids) and max((o for o in owners if o is not None), default=-1) < len(words):
            return owners
    except (ValueError, AttributeError, TypeError):
        pass
    # Slow tokenizers: word i owns as many consecutive non-special pieces as it tokenizes to.
    counts = [max(1, len(encoder.processor.tokenize(w))) for w in words]
    owners_list: list[int | None] = []
    word, used = 0, 0
    for is_special in special:
        if is_special or word >= len(words):
            owners_list.append(None)
            continue
        owners_list.append(word)
        used += 1
        if used == counts[word]:
            word, used = word + 1, 0
    return owners_list


def audio_input(encoder: Encoder, waveform: np.ndarray, segmentation: AudioSegmentation, device) -> ModalityInput:
    from core.encoders.hf import HuggingFaceEncoder

    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if segmentation.domain == "spectrogram" and uses_spectrogram_masking(encoder) and _plain_tensor_encoder(encoder):
        return _logmel_input(encoder, segmentation, device)
    if type(encoder).__name__ == "ResemblyzerAudioEncoder":
        return _resemblyzer_input(encoder, waveform, segmentation, device)
    if isinstance(encoder, HuggingFaceEncoder) and encoder.modality == "audio":
        return _hf_audio_input(encoder, waveform, segmentation, device)
    raise NotDifferentiableError(f"{type(encoder).__name__} has no known differentiable audio input")


def _logmel_input(encoder, segmentation: AudioSegmentation, device) -> ModalityInput:
    x = encoder.prepare_spectrogram(segmentation.spectrogram)
    b = encoder.prepare_spectrogram(np.full_like(segmentation.spectrogram, segmentation.floor_db))

    def place(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        audio_map = attribution.reshape(segmentation.spectrogram.shape).astype(np.float64)
        return audio_map, segment_sums(segmentation.labels, audio_map, segmentation.n_segments)

    return ModalityInput(
        "audio",
        x.unsqueeze(0).to(device).clone(),
        b.unsqueeze(0).to(device).clone(),
        encoder,
        place,
        {
            "input": f"normalised log-mel {list(segmentation.spectrogram.shape)} (frames x bands the CNN reads)",
            "baseline": f"log-mel silence floor ({segmentation.floor_db:g} dB) everywhere",
        },
    )


def resemblyzer_positions(encoder, waveform: np.ndarray, prepared: np.ndarray) -> np.ndarray:
    """For each sample of resemblyzer's preprocessed clip, its index in the original waveform.

    ``preprocess`` raises the volume (a constant gain) and may cut long silences away in
    30 ms windows (webrtcvad, not differentiable). The kept windows are found again by
    matching the preprocessed clip window by window against the gain-adjusted original,
    and the match is verified exactly.

    Raises:
        NotDifferentiableError: the preprocessed clip is not made of whole windows of the original.
    """
    if len(prepared) == len(waveform):
        return np.arange(len(waveform))
    wav = np.asarray(waveform, dtype=np.float32)
    if np.sqrt(np.mean(wav.astype(np.float64) ** 2)) > 1e-8:
        wav = encoder._audio.normalize_volume(wav, encoder._hp.audio_norm_target_dBFS, increase_only=True)
    window = encoder._hp.vad_window_length * encoder._hp.sampling_rate // 1000
    kept: list[int] = []
    j = 0
    n_kept = len(prepared) // window
    for i in range(len(wav) // window):
        if j < n_kept and np.array_equal(wav[i * window : (i + 1) * window], prepared[j * window : (j + 1) * window]):
            kept.append(i)
            j += 1
    if j != n_kept or len(prepared) != n_kept * window:
        raise NotDifferentiableError(
            "resemblyzer's voice-activity trimming (not differentiable) changed the clip in a way "
            "that cannot be traced back to the original timeline"
        )
    return (np.asarray(kept)[:, None] * window + np.arange(window)[None, :]).reshape(-1)


def _resemblyzer_input(encoder, waveform: np.ndarray, segmentation: AudioSegmentation, device) -> ModalityInput:
    prepared_wav = encoder.preprocess(waveform)
    positions = resemblyzer_positions(encoder, waveform, prepared_wav)
    mels = encoder.prepare(waveform)  # [P, 160, 40]
    _, mel_slices = encoder._partial_slices(len(prepared_wav), 1.3, 0.75)
    n_partials, n_frames, n_bands = mels.shape
    hop = encoder._hp.sampling_rate * encoder._hp.mel_window_step // 1000
    # Mel frame f is centred on sample f * hop of the preprocessed clip (librosa, center=True);
    # frames of the end padding belong to the last sample kept.
    frames = np.concatenate([np.arange(s.start, s.start + n_frames) for s in mel_slices])
    original = positions[np.minimum(frames * hop, len(positions) - 1)]
    display_frame = np.round(original / float(hop)).astype(int)

    def embed(t: torch.Tensor) -> torch.Tensor:
        counts = torch.full((t.shape[0],), n_partials, dtype=torch.long, device=t.device)
        batch = {"mels": t.reshape(-1, n_frames, n_bands), "counts": counts}
        if t.is_cuda:
            # cuDNN's LSTM has no backward in eval mode; the native kernel has. (The flag is
            # process-wide while this forward runs: other threads' cuDNN calls take the
            # native path for that moment: slower, and equal up to float rounding.)
            with torch.backends.cudnn.flags(enabled=False):
                return encoder(batch)
        return encoder(batch)

    def place(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = attribution.reshape(n_partials * n_frames, n_bands).T
        grid = frames_to_grid(values, display_frame, n_bands, segmentation)
        return grid, segment_sums(segmentation.labels, grid, segmentation.n_segments)

    trimmed = (len(waveform) - len(prepared_wav)) / encoder._hp.sampling_rate
    return ModalityInput(
        "audio",
        mels.unsqueeze(0).to(device).clone(),
        torch.zeros_like(mels).unsqueeze(0).to(device),
        embed,
        place,
        {
            "input": f"resemblyzer mel frames of its {n_partials} partial windows [{n_frames}, {n_bands}]"
            + (f"; {trimmed:.2f} s of silence trimmed by its VAD get no attribution" if trimmed > 0 else ""),
            "baseline": "zeros (the power mel of silence)",
        },
        noise=False,
    )


def _hf_audio_input(encoder, waveform: np.ndarray, segmentation: AudioSegmentation, device) -> ModalityInput:
    processor = encoder.processor
    name = processor.model_input_names[0]
    prepared = {k: v.to(device) for k, v in encoder.prepare(waveform).items()}
    silence = encoder.prepare(np.zeros_like(waveform))[name].to(device)
    x = prepared.pop(name)
    if silence.shape != x.shape:
        raise NotDifferentiableError(
            f"the feature extractor's silence has shape {tuple(silence.shape)}, not {tuple(x.shape)}"
        )
    n_mels, n_frames = segmentation.spectrogram.shape
    hop = int(getattr(processor, "hop_length", 160) or 160)

    if x.dim() == 1:
        if segmentation.sample_labels is None:
            raise NotDifferentiableError("the audio segmentation has no sample labels for a waveform input")
        n_samples = len(segmentation.sample_labels)

        def place(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            per_sample = attribution.reshape(-1).astype(np.float64)
            sample_index = np.minimum(np.arange(len(per_sample)), n_samples - 1)
            frame = np.minimum(np.round(sample_index / 160.0).astype(int), n_frames - 1)
            frames = np.bincount(frame, per_sample, minlength=n_frames)
            grid = np.repeat(frames[None, :] / n_mels, n_mels, axis=0)
            scores = np.bincount(
                segmentation.sample_labels[sample_index], per_sample, minlength=segmentation.n_segments
            )
            return grid, scores

        kind = f"waveform samples [{x.shape[0]}] after the feature extractor"
    elif x.dim() == 2:
        feature_size = getattr(processor, "feature_size", None)
        mel_bins = getattr(processor, "num_mel_bins", None)
        if name == "input_features" and x.shape[0] == feature_size:
            time_first = False
        elif x.shape[1] in (mel_bins, feature_size):
            time_first = True
        else:
            raise NotDifferentiableError(f"unknown layout of the audio features {tuple(x.shape)}")
        n_bands = x.shape[1] if time_first else x.shape[0]

        def place(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            values = attribution.reshape(x.shape)
            values = values.T if time_first else values  # [bands, frames]
            frame_of = np.round(np.arange(values.shape[1]) * hop / 160.0).astype(int)
            grid = frames_to_grid(values, frame_of, n_bands, segmentation)
            return grid, segment_sums(segmentation.labels, grid, segmentation.n_segments)

        kind = f"{name} {list(x.shape)} (the feature extractor's spectrogram features)"
    else:
        raise NotDifferentiableError(f"unknown audio input shape {tuple(x.shape)}")

    def embed(t: torch.Tensor) -> torch.Tensor:
        return encoder({name: t, **_expand(prepared, t.shape[0])})

    return ModalityInput(
        "audio",
        x.unsqueeze(0).float().clone(),
        silence.unsqueeze(0).float().clone(),
        embed,
        place,
        {"input": kind, "baseline": "the feature extractor's output for an all-zero waveform (silence)"},
    )


INPUT_BUILDERS = {"image": image_input, "text": text_input, "audio": audio_input}
