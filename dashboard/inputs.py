"""Turn what the user uploaded or typed into the current sample, decoding only through core.io."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core.data import Dataset, find_records
from core.errors import SampleDecodeError, UsageError
from core.io import decode_sample, is_blank
from core.sample import Sample
from dashboard.markup import escape_markdown
from dashboard.state import KEEP, CurrentSample


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


PICKER_OPTIONS = 200
"""Records a sample picker lists at once; typing part of an id (or a label) finds the others."""


def pick_record_id(dataset: Dataset, key: str, split_column: Any, record_column: Any) -> str | None:
    """A split selectbox, and in ``record_column`` a search box and a record selectbox (id, true
    label, modalities) listing at most :data:`PICKER_OPTIONS` matching records of the split.

    ``key`` prefixes the widget keys, so each page keeps its own choice, also while the picker is
    not drawn (another tab or input mode). The record chosen before (or set by a link from another
    page) stays among the options while it is in the split.
    """
    split = split_column.selectbox(
        "Split", ["test", "val", "train"], key=f"{key}_split", persist_state=KEEP, help="Split to pick the sample from."
    )
    records = dataset.split(split)
    find_column, pick_column = record_column.columns([1, 2], vertical_alignment="bottom")
    text = find_column.text_input(
        "Find", key=f"{key}_find", persist_state=KEEP, placeholder="id or label…",
        help="Part of a record id, or a label: the list shows the records that match.",
    )  # fmt: skip
    shown, total = find_records(records, text, PICKER_OPTIONS)
    by_id = {r.id: r for r in shown}
    chosen = st.session_state.get(f"{key}_record")
    if isinstance(chosen, str) and chosen not in by_id:
        with contextlib.suppress(UsageError):
            earlier = dataset.record(chosen)
            if earlier.split == split:
                by_id = {chosen: earlier, **by_id}
    record_id = pick_column.selectbox(
        "Sample",
        list(by_id),
        format_func=lambda rid: f"{rid} · label {by_id[rid].label} · {' + '.join(by_id[rid].present())}",
        key=f"{key}_record",
        persist_state=KEEP,
        help="A dataset record by id (its true label and modalities shown).",
        placeholder="no record matches" if not by_id else None,
    )
    if total > len(shown):
        record_column.caption(f"The first {len(shown)} of {total:,} records{' that match' if text.strip() else ''}: type part of an id or a label to find others.")
    elif text.strip():
        found = f"{total:,} records of the {split} split match" if total else f"No record of the {split} split matches"
        record_column.caption(f"{found} “{escape_markdown(text.strip())}”{': pick one under Sample' if total else ''}.")
    return record_id
