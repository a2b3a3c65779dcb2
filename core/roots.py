"""The folders a server may read and write: data roots, checkpoint roots, read-only mode.

A browser never names a server path freely. The dashboard offers the dataset folders found
inside the data roots and the checkpoint folders inside the checkpoint roots
(:func:`dataset_folders`, :func:`checkpoint_folders`); every path that arrives anyway (a URL
parameter, a training request) is checked by :func:`resolve_inside`. A path that is relative,
contains ``..``, or is not inside a root once its symlinks are followed is refused with
:data:`NOT_OFFERED`, one message that says nothing about what exists on the server's disk.

The roots come from :mod:`core.settings` (the demo folders, ``FUSION_DATA_ROOTS``,
``FUSION_CHECKPOINT_ROOTS``, or the dashboard's ``--data-root`` / ``--checkpoint-root``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from core.card import CARD_FILE
from core.data.manifest import MANIFEST_NAMES
from core.errors import AccessError
from core.settings import Settings, settings

NOT_OFFERED = "This folder is not available on this server. Pick one of the folders offered."
"""The one refusal message: the same whether the folder exists, is elsewhere, or is a symlink out."""

READ_ONLY = (
    "This server is read-only (FUSION_READ_ONLY=1): training and writing checkpoints are turned off. "
    "Ask its administrator, or run Fusion Lens on your own machine to train."
)

DATASET_SEARCH_DEPTH = 3
"""Folder levels below a data root searched for manifests (the root itself is level 0)."""

CHECKPOINT_SEARCH_DEPTH = 2
"""Folder levels below a checkpoint root searched for folders of checkpoints."""

MAX_FOLDERS_VISITED = 5_000
"""Bound on one search, so a root over a huge tree cannot stall a page."""


def resolve_inside(path: str | Path, roots: Sequence[Path]) -> Path:
    """``path`` with its symlinks followed, if it is one of ``roots`` or inside one.

    Raises:
        AccessError: with :data:`NOT_OFFERED`, for an empty or relative path, one with a
            ``..`` part, or one that lands outside every root (whether it exists or not).
    """
    text = str(path).strip()
    if not text or "\x00" in text:
        raise AccessError(NOT_OFFERED)
    candidate = Path(text).expanduser()
    if not candidate.is_absolute() or ".." in candidate.parts:
        raise AccessError(NOT_OFFERED)
    try:
        real = candidate.resolve()
    except (OSError, RuntimeError):  # a symlink loop, an unreadable component
        raise AccessError(NOT_OFFERED) from None
    for root in roots:
        root = Path(root).expanduser().resolve()
        if real == root or real.is_relative_to(root):
            return real
    raise AccessError(NOT_OFFERED)


def is_inside(path: str | Path, roots: Sequence[Path]) -> bool:
    """Whether :func:`resolve_inside` accepts ``path``."""
    try:
        resolve_inside(path, roots)
    except AccessError:
        return False
    return True


def dataset_folder(path: str | Path, config: Settings | None = None) -> Path:
    """``path`` resolved, if it is inside a data root (see :func:`resolve_inside`)."""
    return resolve_inside(path, (config or settings()).data_roots)


def checkpoint_folder(path: str | Path, config: Settings | None = None) -> Path:
    """``path`` resolved, if it is inside a checkpoint root (see :func:`resolve_inside`)."""
    return resolve_inside(path, (config or settings()).checkpoint_roots)


def require_writable(config: Settings | None = None) -> None:
    """Refuse a write (a training run, a checkpoint) when the server is read-only; caches are not writes.

    Raises:
        AccessError: with :data:`READ_ONLY` when ``FUSION_READ_ONLY`` is on.
    """
    if (config or settings()).read_only:
        raise AccessError(READ_ONLY)


def _folders(root: Path, depth: int) -> Iterator[Path]:
    """``root`` and the folders below it down to ``depth`` levels, breadth first.

    Symlinked folders are not entered and hidden ones (``.cache``, ``.state``) are skipped.
    """
    level, visited = [root], 0
    for current_depth in range(depth + 1):
        following = []
        for folder in level:
            visited += 1
            if visited > MAX_FOLDERS_VISITED:
                return
            yield folder
            if current_depth == depth:
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            following += [
                Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            ]
        level = following


def _has_manifest(folder: Path, root: Path) -> bool:
    # The manifest itself must not be a symlink out of the root either.
    return any((folder / name).is_file() and is_inside(folder / name, (root,)) for name in MANIFEST_NAMES)


def _holds_checkpoints(folder: Path) -> bool:
    try:
        return any(e.is_dir() and (Path(e.path) / CARD_FILE).is_file() for e in os.scandir(folder))
    except OSError:
        return False


def dataset_folders(data_roots: Sequence[Path] | None = None, depth: int = DATASET_SEARCH_DEPTH) -> list[Path]:
    """Every folder holding a manifest inside ``data_roots`` (default: the configured ones), in root order."""
    found: dict[Path, None] = {}
    for root in settings().data_roots if data_roots is None else data_roots:
        for folder in _folders(root, depth):
            if _has_manifest(folder, root):
                found[folder.resolve()] = None
    return list(found)


def checkpoint_folders(checkpoint_roots: Sequence[Path] | None = None, depth: int = CHECKPOINT_SEARCH_DEPTH) -> list[Path]:
    """Every checkpoint root (default: the configured ones; existing or not: training creates
    it), then the folders below them that hold checkpoints (sub-folders with ``card.json``)."""
    roots = settings().checkpoint_roots if checkpoint_roots is None else checkpoint_roots
    found: dict[Path, None] = dict.fromkeys(roots)
    for root in roots:
        for folder in _folders(root, depth):
            if folder != root and _holds_checkpoints(folder):
                found[folder.resolve()] = None
    return list(found)


def folder_label(folder: Path, roots: Sequence[Path]) -> str:
    """How a picker names ``folder``: its root's name, then the path below the root."""
    for root in roots:
        if folder == root or folder.is_relative_to(root):
            relative = folder.relative_to(root)
            return root.name if relative == Path() else f"{root.name}/{relative.as_posix()}"
    return folder.name
