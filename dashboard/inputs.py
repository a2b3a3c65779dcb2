"""Turn what the user uploaded or typed into the current sample, decoding only through core.io."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.data import Dataset
from core.errors import SampleDecodeError
from core.io import decode_sample, is_blank
from core.sample import Sample
from dashboard.state import CurrentSample


@dataclass
class DecodedUploads:
    """The sample built from the inputs that decoded, and a message per input that did not."""

    sample: CurrentSample | None
    errors: dict[str, str] = field(default_factory=dict)


def decode_uploads(
    image: bytes | None, text: str | None, audio: bytes | None, file_names: list[str] | None = None
) -> DecodedUploads:
    """Decode the given inputs with :func:`core.io.decode_sample` (the configured limits).

    A bad input is reported in ``errors`` (its message, meant for the user) and left out;
    the others still make a sample. Blank text counts as no text, as everywhere.
    ``file_names`` (as the browser sent them: any text at all) name the sample.
    """
    raw = Sample(image=image, text=text, audio=audio)
    if image is None and audio is None and is_blank(text):
        return DecodedUploads(None)
    try:
        decoded, errors = decode_sample(raw), {}
    except SampleDecodeError as err:
        decoded, errors = err.decoded, err.errors
    if not decoded.present():
        return DecodedUploads(None, errors)
    sample = CurrentSample(
        description=f"your upload ({', '.join(file_names)})" if file_names else "your upload",
        decoded=decoded,
        image_bytes=image if decoded.image is not None else None,
        audio_bytes=audio if decoded.audio is not None else None,
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
