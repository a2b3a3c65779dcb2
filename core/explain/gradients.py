"""Gradient attributions through Captum: Integrated Gradients, GradientSHAP and Grad-CAM.

Integrated Gradients and GradientSHAP attribute EVERY differentiable modality of a sample
in one joint call: Captum receives a tuple with one tensor per modality, in the form
the encoder reads it, and the forward function is the target-class probability of
``model.classify`` on the encoders' outputs (non-differentiable modalities keep their
fixed embedding, absent ones their learned missing embedding).

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

Attributions are then placed on the same grids as SHAP and LIME results: the image map
is spread back to the ORIGINAL image size (each input pixel's attribution is shared by
the original pixels its area covers, so the map sums to the same total), word pieces
are summed into the encoder's own words (the tokens of ``TextSegmentation``), and audio
lands on the ``[n_mels, frames]`` grid of the audio segmentation. ``segment_scores``
are the attributions summed within the segments of :mod:`core.explain.segmentation`,
so faithfulness curves and agreement checks apply unchanged.

Not differentiable: a modality that only has a cached embedding (``cached_embeddings``),
or whose encoder's input cannot be reached by gradients in a form that maps back onto
the sample (e.g. an HF text model that only accepts token ids, such as CLIP's text
tower; an audio feature layout it does not know), is recorded in
``metadata["not_differentiable"]`` with the reason and held fixed; the other modalities
are still attributed.

Thread safety: IG and GradientSHAP only call the shared model's modules (no hooks, no
mode change, no parameter written; gradients are taken with ``torch.autograd.grad``
with respect to the input tensors only, so no ``.grad`` is accumulated). Grad-CAM needs
a forward hook (``captum.attr.LayerGradCam``): it runs on a private deep copy of the
image encoder, cached per encoder and guarded by a lock, and re-copied if the shared
encoder's parameters were modified in place since.
"""

from __future__ import annotations

import inspect
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import GradientShap, IntegratedGradients, LayerAttribution, LayerGradCam
from torch import nn

from core.device import describe_device, memory_bounded_batch
from core.encoders.base import Encoder
from core.explain.params import ExplainParams
from core.explain.result import Explanation
from core.explain.segmentation import (
    SEGMENTATIONS,
    AudioSegmentation,
    ImageSegmentation,
    TextSegmentation,
    uses_spectrogram_masking,
)
from core.explain.shap_explainer import seeded_global_rng
from core.model import MultimodalClassifier
from core.sample import DecodedSample

GRADIENT_METHODS = ("integrated_gradients", "gradient_shap", "grad_cam")

AUTO_BATCH_ELEMENTS = 4_000_000
"""Input values per IG forward/backward pass when ``internal_batch_size`` is ``None``."""

PATH_TOLERANCE = 1e-4
"""Largest difference (relative to the embedding's scale) allowed between an attribution
path's embedding of the real input and the encoder's own forward."""


class NotDifferentiable(Exception):
    """A modality's input cannot be attributed by gradients; ``str(err)`` says why."""


class NotApplicable(ValueError):
    """The method does not apply to this model or sample (e.g. Grad-CAM without a conv image encoder)."""


@dataclass(frozen=True)
class GradientParams:
    """Settings of the gradient methods (segmentation settings come from :class:`ExplainParams`).

    Attributes:
        n_steps: integration points of Integrated Gradients. On the demo models 64
            Gauss-Legendre points leave a median |convergence delta| of about 2 % of
            f(x) - f(baseline) (32: 6 %, 128: 1.4 %).
        integration: Captum's integral approximation, ``"gausslegendre"`` (most accurate per
            step here) or ``"riemann_trapezoid"`` etc.
        internal_batch_size: rows per forward/backward pass of IG; ``None``: as many steps
            as keep about ``AUTO_BATCH_ELEMENTS`` input values per pass (all 64 steps for
            the builtin encoders, ~25 for a 224x224 image).
        shap_samples: random (baseline, point on the path) draws of GradientSHAP.
        shap_noise: GradientSHAP's input noise, as a fraction of ``std(input - baseline)``
            of each modality.
        delta_tolerance: when set, IG doubles ``n_steps`` (up to ``max_steps``) until
            ``|convergence delta| <= delta_tolerance * max(|f(x) - f(baseline)|, 1e-3)``
            (``metadata["steps_tried"]`` lists each try). ``None``: one run of ``n_steps``.
        max_steps: the most steps the refinement may reach.
        seed: seeds GradientSHAP's draws (numpy and torch global RNGs, under a lock, state restored).
        relu_cam: Grad-CAM keeps only positive evidence (the usual definition).
    """

    n_steps: int = 64
    integration: str = "gausslegendre"
    internal_batch_size: int | None = None
    delta_tolerance: float | None = None
    max_steps: int = 512
    shap_samples: int = 16
    shap_noise: float = 0.05
    seed: int = 0
    relu_cam: bool = True

    def __post_init__(self) -> None:
        if self.n_steps < 1 or self.shap_samples < 1:
            raise ValueError("n_steps and shap_samples must be at least 1")
        if self.internal_batch_size is not None and self.internal_batch_size < 1:
            raise ValueError("internal_batch_size must be at least 1 (or None)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- placing maps
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


def _segment_sums(labels: np.ndarray, values: np.ndarray, n_segments: int) -> np.ndarray:
    return np.bincount(np.asarray(labels).ravel(), np.asarray(values, dtype=np.float64).ravel(), minlength=n_segments)


# ---------------------------------------------------------------------- per-modality inputs
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
            raise NotDifferentiable(f"the image processor gives {sorted(prepared)}, not just pixel_values")
        x, b = prepared["pixel_values"], removed["pixel_values"]

        def embed(t: torch.Tensor) -> torch.Tensor:
            return encoder({"pixel_values": t})

    elif isinstance(prepared, torch.Tensor) and prepared.is_floating_point() and _plain_tensor_encoder(encoder):
        x, b = prepared, removed
        embed = encoder
    else:
        raise NotDifferentiable(f"{type(encoder).__name__} does not read a float image tensor")
    if x.dim() != 3:
        raise NotDifferentiable(f"the prepared image has shape {tuple(x.shape)}, not [C, h, w]")
    height, width = segmentation.image.shape[:2]
    box = image_box(encoder, height, width)

    def place(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        grid = attribution.reshape(x.shape).sum(axis=0)
        image_map = spread_image(grid, box, height, width)
        return image_map, _segment_sums(segmentation.labels, image_map, segmentation.n_segments)

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
    raise NotDifferentiable(f"{type(encoder).__name__} exposes no token-embedding input")


def builtin_text_from_embeddings(encoder, embedded: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``BuiltinTextEncoder.forward`` from its embedding layer's output ``[N, L, E]`` on.

    Same operations as the encoder's own forward after ``self.embedding(batch)``; every
    call is checked against that forward on the real input (see ``PATH_TOLERANCE``).
    """
    mask = (ids != 0).unsqueeze(1)
    x = embedded.transpose(1, 2)
    pooled = [
        torch.relu(conv(nn.functional.pad(x, (0, conv.kernel_size[0] - 1))))
        .masked_fill(~mask, float("-inf"))
        .amax(dim=2)
        for conv in encoder.convs
    ]
    return encoder.head(torch.cat(pooled, dim=1))


def _builtin_text_input(encoder, text: str, words: list[str], device) -> ModalityInput:
    ids = encoder.prepare(text).to(device)
    with torch.no_grad():
        x = encoder.embedding(ids.unsqueeze(0)).detach().clone()
        b = encoder.embedding.weight[0].detach().expand_as(x).clone()
    used = min(len(words), encoder.max_tokens)

    def embed(t: torch.Tensor) -> torch.Tensor:
        return builtin_text_from_embeddings(encoder, t, ids.unsqueeze(0).expand(t.shape[0], -1))

    def place(attribution: np.ndarray) -> tuple[list[tuple[str, float]], np.ndarray]:
        per_position = attribution.sum(axis=-1)
        scores = np.zeros(len(words))
        scores[:used] = per_position[:used]
        return [(w, float(s)) for w, s in zip(words, scores, strict=True)], scores

    return ModalityInput(
        "text",
        x,
        b,
        embed,
        place,
        {
            "input": f"token embeddings [{encoder.max_tokens}, {encoder.embed_dim}] (nn.Embedding output)",
            "baseline": "the padding embedding (row 0) at every position; ids and pad mask unchanged",
        },
    )


def _hf_text_input(encoder, text: str, words: list[str], device) -> ModalityInput:
    from core.encoders.hf import _masked_mean

    model = encoder.model
    if hasattr(model, "get_text_features") or "inputs_embeds" not in inspect.signature(model.forward).parameters:
        raise NotDifferentiable(f"{type(model).__name__} reads token ids only (no inputs_embeds)")
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

    def place(attribution: np.ndarray) -> tuple[list[tuple[str, float]], np.ndarray]:
        per_piece = attribution.sum(axis=-1)
        scores = np.zeros(len(words))
        for piece, owner in enumerate(owners):
            if owner is not None and owner < len(words):
                scores[owner] += per_piece[piece]
        return [(w, float(s)) for w, s in zip(words, scores, strict=True)], scores

    return ModalityInput(
        "text",
        x,
        b,
        embed,
        place,
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
    raise NotDifferentiable(f"{type(encoder).__name__} has no known differentiable audio input")


def _logmel_input(encoder, segmentation: AudioSegmentation, device) -> ModalityInput:
    x = encoder.prepare_spectrogram(segmentation.spectrogram)
    b = encoder.prepare_spectrogram(np.full_like(segmentation.spectrogram, segmentation.floor_db))

    def place(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        audio_map = attribution.reshape(segmentation.spectrogram.shape).astype(np.float64)
        return audio_map, _segment_sums(segmentation.labels, audio_map, segmentation.n_segments)

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


def _frames_to_grid(
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


def resemblyzer_positions(encoder, waveform: np.ndarray, prepared: np.ndarray) -> np.ndarray:
    """For each sample of resemblyzer's preprocessed clip, its index in the original waveform.

    ``preprocess`` raises the volume (a constant gain) and may cut long silences away in
    30 ms windows (webrtcvad, not differentiable). The kept windows are found again by
    matching the preprocessed clip window by window against the gain-adjusted original,
    and the match is verified exactly.

    Raises:
        NotDifferentiable: the preprocessed clip is not made of whole windows of the original.
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
        raise NotDifferentiable(
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
        grid = _frames_to_grid(values, display_frame, n_bands, segmentation)
        return grid, _segment_sums(segmentation.labels, grid, segmentation.n_segments)

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
        raise NotDifferentiable(
            f"the feature extractor's silence has shape {tuple(silence.shape)}, not {tuple(x.shape)}"
        )
    n_mels, n_frames = segmentation.spectrogram.shape
    hop = int(getattr(processor, "hop_length", 160) or 160)

    if x.dim() == 1:
        if segmentation.sample_labels is None:
            raise NotDifferentiable("the audio segmentation has no sample labels for a waveform input")
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
            raise NotDifferentiable(f"unknown layout of the audio features {tuple(x.shape)}")
        n_bands = x.shape[1] if time_first else x.shape[0]

        def place(attribution: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            values = attribution.reshape(x.shape)
            values = values.T if time_first else values  # [bands, frames]
            frame_of = np.round(np.arange(values.shape[1]) * hop / 160.0).astype(int)
            grid = _frames_to_grid(values, frame_of, n_bands, segmentation)
            return grid, _segment_sums(segmentation.labels, grid, segmentation.n_segments)

        kind = f"{name} {list(x.shape)} (the feature extractor's spectrogram features)"
    else:
        raise NotDifferentiable(f"unknown audio input shape {tuple(x.shape)}")

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


# ---------------------------------------------------------------------- the attribution problem
@contextmanager
def _grad_mode() -> Iterator[None]:
    """Gradients on, even when the caller runs under ``torch.inference_mode`` or ``no_grad``."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


@contextmanager
def seeded_rngs(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """numpy's and torch's global RNGs seeded for the block (Captum draws from both), under
    the lock SHAP uses, previous states restored after."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with seeded_global_rng(seed), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class GradientProblem:
    """One sample, one model, one target: the tuple of inputs Captum attributes and the
    forward function ``inputs -> class probabilities``.

    Args:
        model: the shared classifier (only read; never hooked, put in another mode or modified).
        sample: the decoded sample.
        params: segmentation settings (and which modalities to explain).
        cached_embeddings: per modality, an embedding ``[d]`` or ``[1, d]`` to use instead of
            encoding the sample; those modalities are held fixed and reported not differentiable.

    Attributes:
        inputs, baselines: tuples of ``[1, ...]`` tensors, one per attributed modality.
        modalities: the attributed modalities, in ``inputs`` order.
        not_differentiable: modality -> reason, for present modalities held fixed.
        path_check: modality -> max difference between the attribution path's embedding and
            the encoder's own, on the real input.
    """

    def __init__(
        self,
        model: MultimodalClassifier,
        sample: DecodedSample,
        params: ExplainParams | None = None,
        *,
        cached_embeddings: dict[str, torch.Tensor] | None = None,
    ):
        self.model = model
        self.sample = sample
        self.params = params or ExplainParams()
        self.device = model.device
        # Outside inference mode: tensors made under it could not enter an autograd graph.
        with _grad_mode():
            self._build(model, sample, cached_embeddings)

    def _build(
        self, model: MultimodalClassifier, sample: DecodedSample, cached_embeddings: dict[str, torch.Tensor] | None
    ) -> None:
        cached = dict(cached_embeddings or {})
        present_modalities = [m for m in model.modalities if sample.get(m) is not None or m in cached]
        if not present_modalities:
            raise ValueError(f"The sample has none of the model's modalities ({', '.join(model.modalities)}).")
        self.present = torch.tensor([[m in present_modalities for m in model.modalities]], dtype=torch.bool)
        wanted = [m for m in present_modalities if self.params.modalities is None or m in self.params.modalities]
        self.not_differentiable: dict[str, str] = {}
        self.segmentations: dict[str, Any] = {}
        inputs: dict[str, ModalityInput] = {}
        with torch.no_grad():
            to_encode = [m for m in present_modalities if m not in cached]
            decoded = DecodedSample(**{m: sample.get(m) for m in to_encode})
            batch = model.prepare([decoded])
            encoded = model.embed(batch)
            self.base = {}
            for m in model.modalities:
                if m in cached:
                    self.base[m] = torch.as_tensor(cached[m], dtype=torch.float32).reshape(1, -1).to(self.device)
                else:
                    self.base[m] = encoded[m].float()
        for m in wanted:
            if m in cached:
                self.not_differentiable[m] = "only a cached embedding was given, not the input"
                continue
            segmentation = SEGMENTATIONS.get(m, sample.get(m), model.encoders[m], self.params)
            self.segmentations[m] = segmentation
            try:
                inputs[m] = INPUT_BUILDERS[m](model.encoders[m], sample.get(m), segmentation, self.device)
            except NotDifferentiable as err:
                self.not_differentiable[m] = str(err)
        self.path_check: dict[str, float] = {}
        with torch.no_grad():
            for m, item in list(inputs.items()):
                emb = item.embed(item.inputs).float()
                error = float((emb - self.base[m]).abs().max())
                self.path_check[m] = error
                if not error <= PATH_TOLERANCE * (1.0 + float(self.base[m].abs().max())):
                    self.not_differentiable[m] = (
                        f"the gradient path's embedding differs from the encoder's by {error:.2e}"
                    )
                    del inputs[m]
        self.items = [inputs[m] for m in model.modalities if m in inputs]
        self.modalities = [item.modality for item in self.items]
        self.inputs = tuple(item.inputs for item in self.items)
        self.baselines = tuple(item.baseline for item in self.items)
        with torch.no_grad():
            self.probabilities = self.forward(*self.inputs)[0].double().cpu().numpy()

    def embeddings(self, xs: tuple[torch.Tensor, ...], rows: int) -> dict[str, torch.Tensor]:
        out = {m: e.expand(rows, -1) for m, e in self.base.items()}
        for item, x in zip(self.items, xs, strict=True):
            out[item.modality] = item.embed(x).float()
        return out

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[N, C]`` of the model with the attributed modalities set to ``xs``."""
        rows = xs[0].shape[0] if xs else 1
        logits = self.model.classify(self.embeddings(xs, rows), self.present.expand(rows, -1))
        return torch.softmax(logits.float(), dim=-1)

    def value(self, xs: tuple[torch.Tensor, ...], target: int) -> float:
        with _grad_mode(), torch.no_grad():
            return float(self.forward(*xs)[0, target])

    def explanation(
        self, method: str, target: int, attributions: dict[str, np.ndarray], metadata: dict[str, Any]
    ) -> Explanation:
        """An :class:`Explanation` from raw per-modality attributions (numpy, input-shaped, no batch dim)."""
        model = self.model
        result = Explanation(
            method=method,
            target=target,
            target_name=model.classes[target],
            classes=list(model.classes),
            probabilities=self.probabilities,
            modality_totals={},
        )
        unplaced = {}
        items = {item.modality: item for item in self.items}
        for m, attribution in attributions.items():
            placed, scores = items[m].place(attribution)
            total = float(np.sum(attribution, dtype=np.float64))
            result.modality_totals[m] = total
            result.segment_scores[m] = np.asarray(scores, dtype=np.float64)
            if abs(total - float(scores.sum())) > 1e-9 * max(1.0, abs(total)):
                unplaced[m] = total - float(scores.sum())
            if m == "image":
                result.image = placed
            elif m == "text":
                result.tokens = placed
            else:
                segmentation: AudioSegmentation = self.segmentations[m]
                result.audio = placed
                result.audio_times = segmentation.times
                result.audio_freqs = segmentation.freqs
                result.audio_spectrogram = segmentation.spectrogram.astype(np.float64)
        result.metadata = {
            "method": method,
            "target": target,
            "parameters": self.params.to_dict(),
            "device": describe_device(self.device),
            "segments": {m: int(len(s)) for m, s in result.segment_scores.items()},
            "inputs": {
                item.modality: item.describe.get("input", "") for item in self.items if item.modality in attributions
            },
            "baselines": {
                item.modality: item.describe.get("baseline", "") for item in self.items if item.modality in attributions
            },
            "not_differentiable": dict(self.not_differentiable),
            "path_check": dict(self.path_check),
            **metadata,
        }
        if unplaced:
            # Attribution on input positions no segment covers (text truncated by the
            # encoder is not attributed at all; this is e.g. an empty text's single <unk>).
            result.metadata["unplaced"] = unplaced
        if "audio" in self.segmentations and result.audio is not None:
            result.metadata["audio_domain"] = self.segmentations["audio"].domain
        return result


def _resolve(model, target, probabilities) -> int:
    from core.explain import resolve_target

    return resolve_target(model, target, probabilities)


def _model_of(loaded_or_model) -> MultimodalClassifier:
    return getattr(loaded_or_model, "model", loaded_or_model)


def _checkpoint_metadata(loaded_or_model, result: Explanation) -> Explanation:
    card = getattr(loaded_or_model, "card", None)
    if card is not None:
        result.metadata["checkpoint"] = {"name": loaded_or_model.name, "sha256": card["weights"]["sha256"]}
    return result


def _numpy(attributions: tuple[torch.Tensor, ...], modalities: list[str]) -> dict[str, np.ndarray]:
    return {m: a.detach()[0].double().cpu().numpy() for m, a in zip(modalities, attributions, strict=True)}


def auto_internal_batch(problem: GradientProblem, n_steps: int) -> int:
    """IG rows per pass: about ``AUTO_BATCH_ELEMENTS`` input values, bounded by free CUDA memory."""
    per_row = max(1, sum(x[0].numel() for x in problem.inputs))
    rows = max(1, min(n_steps, AUTO_BATCH_ELEMENTS // per_row))
    return memory_bounded_batch(problem.device, per_row * 4, rows, activation_factor=256)


def _require_inputs(problem: GradientProblem) -> None:
    if not problem.items:
        reasons = "; ".join(f"{m}: {r}" for m, r in problem.not_differentiable.items()) or "nothing to attribute"
        raise NotApplicable(f"No modality of this sample can be attributed by gradients ({reasons}).")


# ---------------------------------------------------------------------- public methods
def integrated_gradients(
    loaded_or_model,
    sample: DecodedSample,
    target: int | str | None = None,
    params: ExplainParams | None = None,
    gradient_params: GradientParams | None = None,
    *,
    cached_embeddings: dict[str, torch.Tensor] | None = None,
) -> Explanation:
    """Integrated Gradients (``captum.attr.IntegratedGradients``) of the target-class
    probability over all differentiable modalities at once.

    Returns an :class:`Explanation` (``method="integrated_gradients"``) with the image map
    at the original size, per-word token scores, the audio map on the segmentation grid,
    ``modality_totals`` (sum of each modality's attributions) and ``segment_scores``.
    ``metadata``: ``convergence_delta`` (Captum's: sum of attributions - (f(x) - f(baseline))),
    ``full_value`` f(x), ``baseline_value`` f(baseline), ``difference`` f(x) - f(baseline),
    ``attribution_sum``, ``n_steps``, ``runtime_s``, ``baselines``, ``not_differentiable``, ...
    """
    started = time.perf_counter()
    gp = gradient_params or GradientParams()
    model = _model_of(loaded_or_model)
    problem = GradientProblem(model, sample, params, cached_embeddings=cached_embeddings)
    _require_inputs(problem)
    target = _resolve(model, target, problem.probabilities)
    full, base = float(problem.probabilities[target]), problem.value(problem.baselines, target)
    steps, tried, evaluations = gp.n_steps, [], 0
    while True:
        batch = gp.internal_batch_size or auto_internal_batch(problem, steps)
        with _grad_mode():
            attributions, delta = IntegratedGradients(problem.forward).attribute(
                problem.inputs,
                baselines=problem.baselines,
                target=target,
                n_steps=steps,
                method=gp.integration,
                internal_batch_size=batch,
                return_convergence_delta=True,
            )
        delta = float(delta.reshape(-1)[0])
        tried.append([steps, delta])
        evaluations += steps + 2
        if (
            gp.delta_tolerance is None
            or abs(delta) <= gp.delta_tolerance * max(abs(full - base), 1e-3)
            or steps * 2 > gp.max_steps
        ):
            break
        steps *= 2
    raw = _numpy(attributions, problem.modalities)
    total = float(sum(a.sum() for a in raw.values()))
    result = problem.explanation(
        "integrated_gradients",
        target,
        raw,
        {
            "algorithm": "captum.attr.IntegratedGradients",
            "convergence_delta": delta,
            "full_value": full,
            "baseline_value": base,
            "difference": full - base,
            "attribution_sum": total,
            "n_steps": steps,
            "steps_tried": tried,
            "integration": gp.integration,
            "internal_batch_size": batch,
            "evaluations": evaluations,
            "gradient_parameters": gp.to_dict(),
            "runtime_s": time.perf_counter() - started,
        },
    )
    return _checkpoint_metadata(loaded_or_model, result)


def gradient_shap(
    loaded_or_model,
    sample: DecodedSample,
    target: int | str | None = None,
    params: ExplainParams | None = None,
    gradient_params: GradientParams | None = None,
    *,
    cached_embeddings: dict[str, torch.Tensor] | None = None,
) -> Explanation:
    """GradientSHAP (``captum.attr.GradientShap``): expected gradients at random points
    between the removed baseline and the (noised) input, times ``input - baseline``.

    Same result shape as :func:`integrated_gradients`; completeness holds only in
    expectation, so ``metadata["convergence_delta"]`` is the mean of Captum's per-draw
    deltas (``convergence_delta_max_abs`` the largest).
    """
    started = time.perf_counter()
    gp = gradient_params or GradientParams()
    model = _model_of(loaded_or_model)
    problem = GradientProblem(model, sample, params, cached_embeddings=cached_embeddings)
    _require_inputs(problem)
    target = _resolve(model, target, problem.probabilities)
    stdevs = tuple(
        float(gp.shap_noise * (item.inputs - item.baseline).float().std()) if item.noise else 0.0
        for item in problem.items
    )
    with _grad_mode(), seeded_rngs(gp.seed, problem.device):
        attributions, delta = GradientShap(problem.forward).attribute(
            problem.inputs,
            baselines=problem.baselines,
            n_samples=gp.shap_samples,
            stdevs=stdevs,
            target=target,
            return_convergence_delta=True,
        )
    full, base = float(problem.probabilities[target]), problem.value(problem.baselines, target)
    raw = _numpy(attributions, problem.modalities)
    result = problem.explanation(
        "gradient_shap",
        target,
        raw,
        {
            "algorithm": "captum.attr.GradientShap",
            "convergence_delta": float(delta.mean()),
            "convergence_delta_max_abs": float(delta.abs().max()),
            "full_value": full,
            "baseline_value": base,
            "difference": full - base,
            "attribution_sum": float(sum(a.sum() for a in raw.values())),
            "n_samples": gp.shap_samples,
            "stdevs": dict(zip(problem.modalities, stdevs, strict=True)),
            "evaluations": gp.shap_samples + 2,
            "gradient_parameters": gp.to_dict(),
            "runtime_s": time.perf_counter() - started,
        },
    )
    return _checkpoint_metadata(loaded_or_model, result)


# ---------------------------------------------------------------------- Grad-CAM
@dataclass
class _PrivateCopy:
    module: nn.Module
    versions: tuple[int, ...]
    lock: threading.Lock
    seconds: float


_COPIES: weakref.WeakKeyDictionary[nn.Module, _PrivateCopy] = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def _versions(module: nn.Module) -> tuple[int, ...]:
    return tuple(t._version for t in (*module.parameters(), *module.buffers()))


def private_copy(module: nn.Module) -> _PrivateCopy:
    """A deep copy of ``module`` for methods that must register hooks, cached per module.

    The copy is rebuilt when the original's parameters or buffers were modified in place
    since it was made (their version counters changed). Use it under ``copy.lock``.
    """
    versions = _versions(module)
    with _COPIES_LOCK:
        entry = _COPIES.get(module)
        if entry is not None and entry.versions == versions:
            return entry
        started = time.perf_counter()
        copied = deepcopy(module)
        entry = _PrivateCopy(copied, versions, threading.Lock(), time.perf_counter() - started)
        _COPIES[module] = entry
        return entry


def grad_cam_layer(encoder: Encoder) -> str:
    """Name (within the encoder) of the layer Grad-CAM reads: the builtin CNN's last conv
    block, EfficientNet's last MBConv stage.

    Raises:
        NotApplicable: the encoder is not a known convolutional image encoder.
    """
    from core.encoders.efficientnet import EfficientNetLite0Encoder
    from core.encoders.image_cnn import BuiltinImageEncoder

    if isinstance(encoder, BuiltinImageEncoder):
        blocks = [
            i for i, block in enumerate(encoder.features) if any(isinstance(m, nn.Conv2d) for m in block.modules())
        ]
        return f"features.{blocks[-1]}"
    if isinstance(encoder, EfficientNetLite0Encoder):
        return f"net._blocks.{len(encoder.net._blocks) - 1}"
    raise NotApplicable(
        f"Grad-CAM needs a convolutional image encoder with a known last conv layer; "
        f"{type(encoder).__name__} has none (pass layer=... to name one)."
    )


def grad_cam(
    loaded_or_model,
    sample: DecodedSample,
    target: int | str | None = None,
    params: ExplainParams | None = None,
    gradient_params: GradientParams | None = None,
    *,
    layer: str | None = None,
) -> Explanation:
    """Grad-CAM (``captum.attr.LayerGradCam``) of the image at the encoder's last conv layer.

    The CAM (ReLU of the gradient-weighted channel sum, ``gradient_params.relu_cam``) is
    upsampled bilinearly to the encoder's input grid (``LayerAttribution.interpolate``),
    scaled so it keeps the CAM's total, and spread back to the original image size. Grad-CAM
    is a relevance map, not an additive decomposition: ``modality_totals["image"]`` is its
    sum, comparable between samples of one model only. Other modalities are held fixed.

    Runs on a private deep copy of the image encoder (hooks never touch the shared model).
    """
    started = time.perf_counter()
    gp = gradient_params or GradientParams()
    model = _model_of(loaded_or_model)
    if "image" not in model.modalities or sample.get("image") is None:
        raise NotApplicable("Grad-CAM explains images: the model or the sample has no image.")
    encoder = model.encoders["image"]
    layer_name = layer or grad_cam_layer(encoder)
    params = params or ExplainParams()
    problem = GradientProblem(model, sample, params)
    if "image" not in problem.modalities:
        raise NotApplicable(
            f"The image cannot be attributed: {problem.not_differentiable.get('image', 'not explained')}."
        )
    target = _resolve(model, target, problem.probabilities)
    item = next(i for i in problem.items if i.modality == "image")
    copy = private_copy(encoder)
    from core.encoders.hf import HuggingFaceEncoder

    hf = isinstance(encoder, HuggingFaceEncoder)

    def forward(x: torch.Tensor) -> torch.Tensor:
        embeddings = {m: e.expand(x.shape[0], -1) for m, e in problem.base.items()}
        embeddings["image"] = (copy.module({"pixel_values": x}) if hf else copy.module(x)).float()
        logits = model.classify(embeddings, problem.present.expand(x.shape[0], -1))
        return torch.softmax(logits.float(), dim=-1)

    with copy.lock, _grad_mode():
        target_layer = copy.module.get_submodule(layer_name)
        cam = LayerGradCam(forward, target_layer).attribute(item.inputs, target=target, relu_attributions=gp.relu_cam)
    cam = cam.detach().float()
    height, width = item.inputs.shape[-2:]
    upsampled = LayerAttribution.interpolate(cam, (height, width), interpolate_mode="bilinear")
    total = float(cam.sum())
    upsampled_sum = float(upsampled.sum())
    scale = total / upsampled_sum if upsampled_sum != 0 else 0.0
    grid = (upsampled[0, 0] * scale).double().cpu().numpy()
    # place() sums over channels: give it a one-channel input-shaped attribution.
    attribution = np.zeros(item.inputs.shape[1:], dtype=np.float64)
    attribution[0] = grid
    result = problem.explanation(
        "grad_cam",
        target,
        {"image": attribution},
        {
            "algorithm": "captum.attr.LayerGradCam",
            "layer": layer_name,
            "layer_grid": list(cam.shape[-2:]),
            "relu_attributions": gp.relu_cam,
            "full_value": float(problem.probabilities[target]),
            "private_copy_seconds": copy.seconds,
            "evaluations": 1,
            "gradient_parameters": gp.to_dict(),
            "runtime_s": time.perf_counter() - started,
        },
    )
    result.metadata["not_differentiable"].update(
        {m: "Grad-CAM explains the image only" for m in problem.modalities if m != "image"}
    )
    result.metadata["inputs"] = {"image": f"activations of {layer_name} ({list(cam.shape[-2:])} grid)"}
    result.metadata["baselines"] = {}
    return _checkpoint_metadata(loaded_or_model, result)


def gradient_explain(
    loaded_or_model,
    sample: DecodedSample,
    method: str = "integrated_gradients",
    target: int | str | None = None,
    params: ExplainParams | None = None,
    gradient_params: GradientParams | None = None,
    *,
    with_faithfulness: bool = False,
) -> Explanation:
    """One gradient method by name (``GRADIENT_METHODS``), like :func:`core.explain.explain`.

    ``with_faithfulness`` adds the deletion/insertion curves of :func:`core.explain.faithfulness`
    over the result's segment scores (one perturbation engine; about 4 x (steps + 1)
    extra evaluations).
    """
    functions = {"integrated_gradients": integrated_gradients, "gradient_shap": gradient_shap, "grad_cam": grad_cam}
    if method not in functions:
        raise ValueError(f"Unknown gradient method {method!r}; choose one of {', '.join(GRADIENT_METHODS)}.")
    result = functions[method](loaded_or_model, sample, target, params, gradient_params)
    if with_faithfulness:
        from core.explain.engine import PerturbationEngine
        from core.explain.quality import faithfulness

        engine = PerturbationEngine(_model_of(loaded_or_model), sample, params or ExplainParams())
        result.faithfulness = faithfulness(engine, result)
    return result
