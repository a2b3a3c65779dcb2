"""Modality encoders: builtin CNNs trained from scratch and frozen pretrained models.

``build_encoder(modality, spec)`` rebuilds an encoder from the spec stored in a
checkpoint card; ``encoder_from_choice(modality, choice)`` builds one from a user's
choice (CLI flag, dashboard picker). Encoder modules are imported on demand, so
importing this package does not load transformers, librosa or resemblyzer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.encoders.base import Encoder, FrozenEncoder
from core.errors import EncoderLoadError

ENCODER_CHOICES: dict[str, list[str]] = {
    "audio": ["builtin", "resemblyzer", "hf:<name-or-dir>"],
    "image": ["builtin", "efficientnet-lite0", "hf:<name-or-dir>"],
    "text": ["builtin", "minilm", "hf:<name-or-dir>"],
}
"""User-facing choices per modality; ``hf:`` takes a hub name or a local model directory."""

_PRETRAINED_KIND = {"audio": "resemblyzer", "image": "efficientnet-lite0", "text": "minilm"}

__all__ = [
    "ENCODER_CHOICES",
    "Encoder",
    "FrozenEncoder",
    "build_encoder",
    "encoder_from_choice",
]


def build_encoder(modality: str, spec: dict[str, Any]) -> Encoder:
    """Rebuild an encoder from its ``spec()`` (architecture and preprocessing; trainable
    weights are loaded separately).

    Raises:
        EncoderLoadError: unknown kind, a kind that does not fit the modality, or a
            pretrained model that cannot be loaded.
    """
    kind = spec.get("kind")
    if modality not in ENCODER_CHOICES:
        raise EncoderLoadError(f"Unknown modality {modality!r}; expected one of {sorted(ENCODER_CHOICES)}.")
    if kind == "builtin":
        if modality == "image":
            from core.encoders.image_cnn import BuiltinImageEncoder as builtin
        elif modality == "audio":
            from core.encoders.audio_cnn import BuiltinAudioEncoder as builtin
        else:
            from core.encoders.text_cnn import BuiltinTextEncoder as builtin
        return builtin.from_spec(spec)
    if kind == "hf":
        from core.encoders.hf import HuggingFaceEncoder

        if spec.get("modality", modality) != modality:
            raise EncoderLoadError(f"The spec describes a {spec['modality']} model, not a {modality} encoder.")
        return HuggingFaceEncoder.from_spec({**spec, "modality": modality})
    if kind not in _PRETRAINED_KIND.values():
        raise EncoderLoadError(
            f"Unknown encoder {kind!r} for {modality}; choose one of {', '.join(ENCODER_CHOICES[modality])}."
        )
    if _PRETRAINED_KIND[modality] != kind:
        owner = next(m for m, k in _PRETRAINED_KIND.items() if k == kind)
        raise EncoderLoadError(
            f"'{kind}' is a {owner} encoder and cannot encode {modality}; "
            f"choose one of {', '.join(ENCODER_CHOICES[modality])}."
        )
    if kind == "minilm":
        from core.encoders.minilm import MiniLMTextEncoder

        return MiniLMTextEncoder.from_spec(spec)
    if kind == "efficientnet-lite0":
        from core.encoders.efficientnet import EfficientNetLite0Encoder

        return EfficientNetLite0Encoder.from_spec(spec)
    from core.encoders.resemblyzer_audio import ResemblyzerAudioEncoder

    return ResemblyzerAudioEncoder.from_spec(spec)


def encoder_from_choice(modality: str, choice: str, *, corpus: Iterable[str] | None = None) -> Encoder:
    """A fresh encoder for a user's choice: ``builtin``, ``minilm``, ``efficientnet-lite0``,
    ``resemblyzer`` or ``hf:<name-or-dir>``.

    Args:
        modality: ``"image"``, ``"text"`` or ``"audio"``.
        choice: one of ``ENCODER_CHOICES[modality]``.
        corpus: training texts; required for the builtin text encoder (its vocabulary).

    Raises:
        EncoderLoadError: unknown choice, a choice for another modality, a missing corpus
            for builtin text, or a pretrained model that cannot be loaded.
    """
    choice = choice.strip()
    if choice.startswith("hf:"):
        name = choice[3:].strip()
        if not name:
            raise EncoderLoadError("'hf:' needs a model name or directory, e.g. hf:openai/clip-vit-base-patch32.")
        return build_encoder(modality, {"kind": "hf", "name": name, "modality": modality})
    if choice == "builtin":
        if modality == "text":
            if corpus is None:
                raise EncoderLoadError("The builtin text encoder needs the training texts to build its vocabulary.")
            from core.encoders.text_cnn import BuiltinTextEncoder

            return BuiltinTextEncoder.from_corpus(corpus)
        if modality == "image":
            from core.encoders.image_cnn import BuiltinImageEncoder

            return BuiltinImageEncoder()
        if modality == "audio":
            from core.encoders.audio_cnn import BuiltinAudioEncoder

            return BuiltinAudioEncoder()
    return build_encoder(modality, {"kind": choice})
