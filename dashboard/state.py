"""What the pages share through ``st.session_state``: the sidebar's selection and the current sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from core.card import CheckpointInfo
from core.data import Dataset, load_sample
from core.errors import DatasetError
from core.hashing import content_hash
from core.io import read_file
from core.sample import MODALITIES, DecodedSample

SELECTION = "selection"
CURRENT_SAMPLE = "current_sample"
EXPLAIN_CHECKPOINT = "explain_checkpoint"
KEEP = "page"
"""Widgets' ``persist_state``: a widget keeps its value while it is not drawn (a closed tab, a
hidden input mode), until the user leaves the page."""


@dataclass
class Selection:
    """The sidebar's choices, refreshed on every run before the page runs.

    Attributes:
        dataset_root: the dataset folder picked in the sidebar (inside a data root).
        dataset: the loaded dataset, or ``None`` (then ``dataset_error`` says why).
        dataset_error: a message for the user, with the command that fixes it when known.
        checkpoint_dir: the checkpoint folder (inside a checkpoint root).
        checkpoints: every checkpoint found there (unreadable ones carry ``error``).
        chosen: the checkpoints picked for prediction and comparison.
    """

    dataset_root: Path
    dataset: Dataset | None
    dataset_error: str | None
    dataset_report: DatasetError | None
    checkpoint_dir: Path
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    chosen: list[CheckpointInfo] = field(default_factory=list)

    def require_dataset(self) -> Dataset:
        """The dataset, or stop the page with the reason shown (the sidebar stays usable)."""
        if self.dataset is None:
            st.error(self.dataset_error or "No dataset is loaded.", icon=":material/database:")
            if self.dataset_report is not None:
                with st.expander("Every problem found"):
                    st.code(self.dataset_report.details or "", language="text")
            st.stop()
        return self.dataset

    def require_checkpoints(self) -> list[CheckpointInfo]:
        """The chosen checkpoints, or stop the page with a hint."""
        if not self.chosen:
            if not [c for c in self.checkpoints if c.error is None]:
                st.warning(
                    "No checkpoint in the chosen folder. Build the demo ones with `make run` "
                    "(or `.venv/bin/python -m core demo`), or train some on the Train page.",
                    icon=":material/folder_off:",
                )
            else:
                st.info("Pick one or more checkpoints in the sidebar.", icon=":material/checklist:")
            st.stop()
        return self.chosen


def selection() -> Selection:
    """The selection the entry point stored for this run."""
    return st.session_state[SELECTION]


@dataclass
class CurrentSample:
    """The sample the pages talk about: an upload, a dataset record, or Compare's link.

    Attributes:
        description: how to name it to the user.
        decoded: the decoded modalities (decoded only through :mod:`core.io`).
        image_bytes, audio_bytes: the original files, for previews and playback.
        key: content hash of the decoded modalities (part of explanation cache keys).
    """

    description: str
    decoded: DecodedSample
    image_bytes: bytes | None = None
    audio_bytes: bytes | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = "|".join(
                f"{m}:{content_hash(self.decoded.get(m))}" for m in MODALITIES if self.decoded.get(m) is not None
            )


def sample_from_record(dataset: Dataset, record_id: str) -> CurrentSample:
    """A dataset record as the current sample (decoded with the dataset's limits)."""
    record = dataset.record(record_id)
    return CurrentSample(
        description=f"dataset sample {record.id} ({record.split}, label {record.label})",
        decoded=load_sample(record, dataset.limits),
        image_bytes=read_file(record.image, dataset.limits) if record.image else None,
        audio_bytes=read_file(record.audio, dataset.limits) if record.audio else None,
    )


def current_sample() -> CurrentSample | None:
    return st.session_state.get(CURRENT_SAMPLE)


def set_current_sample(sample: CurrentSample) -> None:
    st.session_state[CURRENT_SAMPLE] = sample
