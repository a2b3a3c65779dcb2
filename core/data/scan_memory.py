"""A dataset's validation remembered whole: loading an unchanged dataset again skips the work.

Validation parses the manifest, checks every row and looks up every file's verdict
(:mod:`core.data.file_checks`); for 100,000 rows that is a few seconds of Python even when
every verdict is remembered, and the dashboard pays it when it first shows a dataset. So
the result of a scan is kept too: one ``.npz`` per manifest and decoding limits under
``settings().validation_cache_dir / "scans"`` (a later scan of an edited manifest replaces
it), used again only while:

- the manifest's bytes are the same (their SHA-256 is stored with the scan);
- every folder the manifest names still resolves to the same real folder;
- every file the manifest names, valid or not, has the same size, mtime and ctime (one
  ``lstat`` each, as the verdict table trusts them), and every missing file is still missing.

A scan that followed a symbolic link, or saw a file changed in the last
:data:`~core.data.file_checks.RACY_SECONDS`, is not remembered. Anything that cannot be read
back exactly (another version, a damaged file) is ignored and the dataset scanned afresh.
Nothing here is unpickled: the arrays are plain numbers and UTF-8 text, the scan is JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from stat import S_ISLNK
from typing import Any

import numpy as np

from core.atomic import write_bytes_atomic
from core.data import file_checks
from core.settings import Limits, settings

SCAN_VERSION = 1
"""Part of every key: bump it when what a scan finds changes (new row checks, other fields)."""

_MISSING = (-1, -1, -1)


def scan_path(manifest: str, limits: Limits, cache_dir: Path | None = None) -> Path:
    """Where the scan of the dataset whose manifest is at ``manifest`` is kept, for these limits."""
    text = f"{manifest}|{SCAN_VERSION}|{file_checks.CHECKER_VERSION}|{limits!r}"
    folder = cache_dir or settings().validation_cache_dir / "scans"
    return folder / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.npz"


def _text(arrays: Any, name: str) -> str:
    return bytes(arrays[name]).decode("utf-8")


def recall(path: Path, manifest: bytes, root: str) -> tuple[dict[str, Any], list[str]] | None:
    """``(scan, files)`` as :func:`remember` was given them, or ``None`` when nothing usable is
    at ``path``: none, unreadable, of other manifest bytes, or some folder or file it depends on
    changed since. ``files`` are absolute paths under the dataset folder ``root``."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            header = json.loads(_text(arrays, "header"))
            if header != {"version": SCAN_VERSION, "manifest": hashlib.sha256(manifest).hexdigest(), "root": root}:
                return None
            folders = json.loads(_text(arrays, "folders"))
            names = _text(arrays, "files")
            known = np.asarray(arrays["stats"], dtype=np.int64)
            scan = json.loads(_text(arrays, "scan"))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, EOFError, zipfile.BadZipFile):
        return None
    files = [f"{root}/{name}" for name in names.split("\n")] if names else []
    if known.shape != (len(files), 3) or not isinstance(folders, dict):
        return None
    if any(os.path.realpath(folder) != real for folder, real in folders.items()):
        return None
    now = []
    for file in files:
        try:
            stat = os.lstat(file)
        except (FileNotFoundError, NotADirectoryError):
            now.append(_MISSING)
            continue
        except OSError:
            return None
        if S_ISLNK(stat.st_mode):
            return None
        now.append((stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
    if files and not np.array_equal(np.array(now, dtype=np.int64), known):
        return None
    return scan, files


def remember(
    path: Path,
    manifest: bytes,
    root: str,
    scan: Mapping[str, Any],
    folders: Mapping[str, str],
    files: Mapping[str, os.stat_result | None],
) -> None:
    """Keep ``scan`` (JSON data) of the ``manifest`` bytes of the dataset folder ``root`` at
    ``path``, trusted while ``folders`` (as named -> real path) and ``files`` (each file the scan
    looked at, all under ``root`` -> its ``lstat``, ``None`` when missing) stay as they are. Not
    kept when a file changed too recently to be sure of, or a name holds a line break; a
    failure to write is ignored (the next load scans again)."""
    stable_before = time.time_ns() - int(file_checks.RACY_SECONDS * 1e9)
    names, stats = [], []
    for file, stat in files.items():
        name = file[len(root) + 1 :]
        if not file.startswith(root + "/") or "\n" in name:
            return
        if stat is not None and max(stat.st_mtime_ns, stat.st_ctime_ns) >= stable_before:
            return
        names.append(name)
        stats.append(_MISSING if stat is None else (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
    texts = {
        "header": json.dumps({"version": SCAN_VERSION, "manifest": hashlib.sha256(manifest).hexdigest(), "root": root}),
        "folders": json.dumps(dict(folders)),
        "files": "\n".join(names),
        "scan": json.dumps(scan, separators=(",", ":")),
    }
    try:
        encoded = {name: np.frombuffer(text.encode("utf-8"), dtype=np.uint8) for name, text in texts.items()}
    except UnicodeEncodeError:  # a cell holding a lone surrogate: such a scan is simply not kept
        return
    buffer = io.BytesIO()
    np.savez(buffer, stats=np.array(stats, dtype=np.int64).reshape(-1, 3), **encoded)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, buffer.getvalue())
