"""Progress events of a training run: written as JSON lines by the run, read by the dashboard.

Every event is a dict with ``"event"`` set to one of:

- ``start``: ``models``, ``device``;
- ``stage``: ``stage`` (a sentence: "training the image encoder");
- ``epoch``: ``model``, ``epoch``, ``epochs``, ``train_loss``, ``val_loss``, ``val_accuracy``;
- ``skipped``: ``model``, ``path``, ``reason`` (already complete, with ``--resume``);
- ``saved``: ``model``, ``path``, ``metrics``;
- ``done``: ``results``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ProgressCallback = Callable[[dict[str, Any]], None]


def event_writer(path: str | Path) -> ProgressCallback:
    """A callback appending each event, with its time, as one JSON line to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(event: dict[str, Any]) -> None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **event}) + "\n")

    return write


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Every complete event in ``path``, in order (the line being written right now is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events
