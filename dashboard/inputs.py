"""Turn what the user uploaded or typed into the current sample, decoding only through core.io."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.data import Dataset
from core.io import InputError, Limits, decode_audio, decode_image, decode_text
from core.sample import DecodedSample
from dashboard.state import CurrentSample


@dataclass
class DecodedUploads:
    """The sample built from the inputs that decoded, and a message per input that did not."""

    sample: CurrentSample | None
    errors: dict[str, str] = field(default_factory=dict)


def decode_uploads(image: bytes | None, text: str | None, audio: bytes | None) -> DecodedUploads:
    """Decode each given input with :class:`Limits` from the environment.

    A bad input is reported in ``errors`` (the :class:`InputError` message, meant for the
    user) and left out; the others still make a sample. Blank text counts as no text.
    """
    limits = Limits.from_env()
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    decoders = {
        "image": (image, lambda data: decode_image(data, limits)),
        "text": (text if text and text.strip() else None, lambda data: decode_text(data, limits)),
        "audio": (audio, lambda data: decode_audio(data, limits)),
    }
    for modality, (raw, decode) in decoders.items():
        if raw is None:
            continue
        try:
            values[modality] = decode(raw)
        except InputError as err:
            errors[modality] = str(err)
    if not values:
        return DecodedUploads(None, errors)
    sample = CurrentSample(
        description="your upload",
        decoded=DecodedSample(**values),
        image_bytes=image if "image" in values else None,
        audio_bytes=audio if "audio" in values else None,
    )
    return DecodedUploads(sample, errors)


def pick_record_id(dataset: Dataset, key: str, split_column: Any, record_column: Any) -> str | None:
    """A split selectbox and a record selectbox (id, true label, modalities) in the given columns.

    ``key`` prefixes the widget keys, so each page keeps its own choice.
    """
    split = split_column.selectbox(
        "Split", ["test", "val", "train"], key=f"{key}_split", help="Split to pick the sample from."
    )
    records = {r.id: r for r in dataset.split(split)}
    return record_column.selectbox(
        "Sample",
        list(records),
        format_func=lambda rid: f"{rid} · label {records[rid].label} · {' + '.join(records[rid].present())}",
        key=f"{key}_record",
        help="A dataset record by id (its true label and modalities shown).",
    )
