"""A dataset's files, checked: each read and decoded once, its verdict remembered on disk.

Validation decodes every image and audio file a manifest names and hashes its bytes (the
content hash keys the embedding store and the dataset's fingerprint). That is nearly all
of its cost, and a file that did not change gets the same verdict, so verdicts are kept
on disk, one table per dataset folder and decoding limits under
``settings().validation_cache_dir``, keyed by (path, modality) and trusted while the
file's size, mtime and ctime are unchanged. The table is a few flat arrays in one ``.npz``
(a 100,000-file table loads in milliseconds), replaced atomically when a validation
checked something new. A file changed less than :data:`RACY_SECONDS` before its check is
not remembered: a second change within the file system's timestamp granularity would
leave its times as they were (git's "racy clean" rule). A table that cannot be read or
written is ignored: every file is then simply checked.

Checks that are not remembered run in worker processes (:mod:`core.parallel`), two per core
by default: decoding small files is Python-bound, so threads would share one core, and a
second process per core decodes while the first waits for the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.atomic import write_bytes_atomic
from core.errors import InputError
from core.hashing import content_hash
from core.io import check_audio, decode_image, read_file
from core.parallel import process_map, worker_count
from core.settings import Limits, settings

CHECKER_VERSION = 1
"""Part of every key: bump it when decoding rules change, so old verdicts are not trusted."""

RACY_SECONDS = 2.0
"""Files changed this recently are checked but not remembered."""

PER_WORKER = 400
"""Fewest files per worker process worth starting one for."""

READERS_PER_CORE = 2
"""Default workers per core: each also waits for its files to be read, and a second one per core
keeps the core busy meanwhile (30,000 rows, 2 cores, files read from disk: 14.5-16.9 s with one
worker per core, 11.1-12.0 s with two; from the page cache 9.8 s and 10.4 s)."""

_CHECKERS = {"image": decode_image, "audio": check_audio}
"""What checks a file of each modality: what decoding for the model would raise (audio is not resampled)."""
_SEPARATORS = {"\n", "\t"}
"""Characters the table uses between fields: a path holding one is checked, never remembered."""


@dataclass(frozen=True)
class FileCheck:
    """The verdict on one file: its content hash, or why it cannot be used.

    ``problem`` is the reason without the manifest cell; :meth:`reason` adds the cell.
    ``missing`` marks a file that does not exist.
    """

    digest: str | None
    problem: str | None = None
    missing: bool = False

    @classmethod
    def missing_file(cls) -> FileCheck:
        return cls(None, missing=True)

    def reason(self, cell: str) -> str | None:
        if self.missing:
            return f"file not found: {cell}"
        if self.problem is None:
            return None
        return f"{self.problem} ({cell})" if not self.problem.startswith("cannot access") else f"{self.problem}: {cell}"


def _check_one(job: tuple[str, str, Limits]) -> FileCheck:
    """Read, decode and hash one file (runs in a worker process)."""
    path, modality, limits = job
    try:
        data = read_file(path, limits)
        _CHECKERS[modality](data, limits)
    except InputError as err:
        return FileCheck(None, str(err))
    except OSError as err:  # e.g. a name too long for the file system
        return FileCheck(None, f"cannot access the file ({err.strerror or err})")
    return FileCheck(content_hash(data))


def _table_path(folder: Path, root: str, limits: Limits) -> Path:
    """One table per dataset folder and what a verdict depends on besides the file (checker, limits)."""
    text = f"{root}|{CHECKER_VERSION}|{limits.max_bytes}|{limits.max_image_pixels}|{limits.max_audio_seconds}"
    return folder / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz"


@dataclass
class _Table:
    """Remembered verdicts: ``index[(path, modality)]`` is a row of ``stats`` (size, mtime_ns,
    ctime_ns), ``digests`` and ``problems`` ("" for none)."""

    index: dict[tuple[str, str], int]
    stats: np.ndarray
    digests: list[str]
    problems: list[str]

    def __post_init__(self) -> None:
        self.times = self.stats.tolist()  # plain lists: comparing them is what a warm validation does most

    @classmethod
    def read(cls, path: Path) -> _Table:
        try:
            with np.load(path, allow_pickle=False) as arrays:
                keys = bytes(arrays["keys"]).decode("utf-8").split("\n")
                digests = bytes(arrays["digests"]).decode("ascii").split("\n")
                problems = bytes(arrays["problems"]).decode("utf-8").split("\n")
                stats = np.asarray(arrays["stats"], dtype=np.int64)
            pairs = [tuple(key.split("\t", 1)) for key in keys]
            if not len(pairs) == len(digests) == len(problems) == len(stats):
                raise ValueError("inconsistent table")
            return cls(dict(zip(pairs, range(len(pairs)), strict=True)), stats, digests, problems)  # type: ignore[arg-type]
        except (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError, zipfile.BadZipFile):  # missing, damaged, foreign
            return cls({}, np.zeros((0, 3), np.int64), [], [])

    def get(self, key: tuple[str, str], stat: os.stat_result) -> FileCheck | None:
        row = self.index.get(key)
        if row is None:
            return None
        if self.times[row] != [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]:
            return None
        return FileCheck(self.digests[row] or None, self.problems[row] or None)

    def write(self, path: Path, entries: dict[tuple[str, str], tuple[tuple[int, int, int], FileCheck]]) -> None:
        """Replace the table with ``entries`` (key -> (stat triple, verdict)); a failure is ignored."""
        keys = list(entries)
        arrays = {
            "keys": "\n".join(f"{p}\t{m}" for p, m in keys).encode("utf-8"),
            "digests": "\n".join(entries[k][1].digest or "" for k in keys).encode("ascii"),
            "problems": "\n".join((entries[k][1].problem or "").replace("\n", " ") for k in keys).encode("utf-8"),
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            stats=np.array([entries[k][0] for k in keys], dtype=np.int64).reshape(-1, 3),
            **{name: np.frombuffer(data, dtype=np.uint8) for name, data in arrays.items()},
        )
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, buffer.getvalue())


def check_files(
    files: dict[tuple[str, str], os.stat_result],
    root: str,
    limits: Limits,
    cache_dir: Path | None = None,
) -> dict[tuple[str, str], FileCheck]:
    """The verdict on each file.

    Args:
        files: ``(resolved path, modality)`` -> the file's ``os.stat``. Missing files are the
            caller's to report (:meth:`FileCheck.missing_file`).
        root: the dataset folder (resolved); every path lies inside it.
        limits: decoding limits (part of the key: other limits, other verdicts).
        cache_dir: where the tables are (default ``settings().validation_cache_dir``).
    """
    table_path = _table_path(cache_dir or settings().validation_cache_dir, root, limits)
    table = _Table.read(table_path)
    out: dict[tuple[str, str], FileCheck] = {}
    todo: list[tuple[str, str]] = []
    for key, stat in files.items():
        known = table.get(key, stat)
        if known is None:
            todo.append(key)
        else:
            out[key] = known
    workers = worker_count(len(todo), PER_WORKER, per_core=READERS_PER_CORE)
    chunk = max(1, min(256, len(todo) // (4 * workers))) if workers else 1
    checks = process_map(_check_one, [(path, modality, limits) for path, modality in todo], workers, chunk)
    stable_before = time.time_ns() - int(RACY_SECONDS * 1e9)
    remember = []
    for key, check in zip(todo, checks, strict=True):
        out[key] = check
        stat = files[key]
        if max(stat.st_mtime_ns, stat.st_ctime_ns) < stable_before and not _SEPARATORS & set(key[0]):
            remember.append(key)
    if remember:
        entries = {key: (tuple(table.stats[row].tolist()), FileCheck(table.digests[row] or None, table.problems[row] or None))
                   for key, row in table.index.items()}  # fmt: skip
        for key in remember:
            stat = files[key]
            entries[key] = ((stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns), out[key])
        table.write(table_path, entries)
    return out
