"""Stage 2's encoder inputs, prepared while stage 1's last trainings leave a core idle.

Stage 1 trains the built-in encoders side by side, one per core. Once fewer trainings are
left than cores (at the end, the audio encoder alone, the longest), a core would wait. Stage 2
then decodes and prepares every training row again to embed it with the trained encoder
(the encoders' own ``_finish`` has already embedded the validation and test rows). Decoding
and preparing (an audio file's log-mel) depends on the encoder's settings, not its weights,
so that core prepares those rows ahead, and stage 2 only runs the encoder on them.

What is prepared ahead is held in memory, up to :func:`default_budget_bytes`; rows past the budget are
prepared in stage 2 as before. The embeddings are the same either way: the same ``prepare``
runs on the same files, only earlier.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch

from core.data import Record, modality_values
from core.encoders.base import Encoder
from core.errors import InputError
from core.settings import Limits

AHEAD_BYTES = 1 << 30
"""Most memory for inputs prepared ahead (1 GiB: 65,000 one-second log-mels)."""

AHEAD_SHARE_OF_MEMORY = 16
"""...and at most this fraction (1/16) of the machine's memory."""

STEP_ROWS = 32
"""Rows prepared per step, so the trainings' events and results are read without delay."""


class InputsAhead:
    """Prepared inputs by modality and content hash (what :func:`core.embeddings.embed_records`
    takes as ``prepared``), filled a step at a time by :meth:`steps`."""

    def __init__(self, budget_bytes: int | None = None):
        self.budget_bytes = default_budget_bytes() if budget_bytes is None else budget_bytes
        self.used_bytes = 0
        self.inputs: dict[str, dict[str, Any]] = {}
        self._dropped: set[str] = set()  # modalities embedded already: nothing more to prepare

    def rows(self) -> int:
        return sum(len(ready) for ready in self.inputs.values())

    def steps(self, plan: list[tuple[str, Encoder, list[Record]]], limits: Limits) -> Iterator[None]:
        """Prepare, :data:`STEP_ROWS` per ``next()``, the inputs of ``plan`` ((modality, encoder,
        records), in order) while the budget allows, leaving a modality once it is dropped. A file
        that can no longer be read is left to stage 2, which reports it."""
        for modality, encoder, records in plan:
            ready = self.inputs.setdefault(modality, {})
            rows = [r for r in records if getattr(r, modality) is not None]
            for start in range(0, len(rows), STEP_ROWS):
                if modality in self._dropped:
                    break
                part = rows[start : start + STEP_ROWS]
                values = modality_values(part, modality, limits)
                for index, record in enumerate(part):
                    key = record.content_hash(modality)
                    if key in ready:
                        continue
                    try:
                        item = encoder.prepare(values[index])
                    except InputError:
                        continue
                    size = _size(item)
                    if self.used_bytes + size > self.budget_bytes:
                        return
                    ready[key] = item
                    self.used_bytes += size
                yield

    def drop(self, modality: str) -> None:
        """Forget ``modality``'s inputs and the memory they held, and prepare no more of it (its
        embeddings are stored)."""
        self._dropped.add(modality)
        self.used_bytes -= sum(_size(item) for item in self.inputs.pop(modality, {}).values())


def default_budget_bytes() -> int:
    """:data:`AHEAD_BYTES`, or 1/:data:`AHEAD_SHARE_OF_MEMORY` of the machine's memory if less."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system that tells
        return AHEAD_BYTES
    return min(AHEAD_BYTES, memory // AHEAD_SHARE_OF_MEMORY)


def _size(item: Any) -> int:
    """Bytes an input holds (a tensor's data; 1 KiB for anything else, e.g. tokens)."""
    return item.untyped_storage().nbytes() if isinstance(item, torch.Tensor) else 1024
