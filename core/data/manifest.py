"""Dataset folders described by ``manifest.csv`` / ``manifest.jsonl``: parsing, validation, splits.

A dataset is a folder holding a manifest with one row per sample:

- ``label``: the class name (required, unless the manifest has other task columns);
- ``label:<task>``, ``labels:<task>`` (optional): more tasks, see :mod:`core.tasks`.
- ``split`` (optional): ``train``, ``val`` or ``test``. Rows without one get a seeded,
  stratified 70/15/15 split.
- ``image``, ``audio``: paths relative to the folder; ``text``: the text itself.
  An empty cell, a missing key or a JSON ``null`` is a missing modality.
- ``id`` (optional) and any other column, kept per record as ``extras`` (metadata).

Validation reports every bad row at once and never raises for bad content, so a user
fixes a manifest in one pass. File bytes are only ever read and decoded through
:mod:`core.io`.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import gc
import hashlib
import io
import json
import os
import posixpath
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISLNK
from typing import Any

import numpy as np

from core.data import scan_memory
from core.data.file_checks import FileCheck, check_files
from core.data.records import SPLITS, Dataset, Record, RowIssue, ValidationReport, natural_sort_key
from core.errors import DatasetError, InputError
from core.io import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, decode_text, read_file
from core.sample import MODALITIES
from core.settings import Limits, settings
from core.tasks import MULTI, NO_LABELS, PRIMARY, SINGLE, Task, parse_target, task_for_column

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
"""Looked up in this order: a folder holding both uses the CSV."""

AUTO_SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}
"""Share of each class sent to val and test when the manifest gives no split; the rest is train."""

FILE_MODALITIES = ("audio", "image")
_DRIVE = re.compile(r"[A-Za-z]:")
RESERVED_COLUMNS = ("id", "label", "split", "image", "audio", "text")
_EXTENSIONS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS}


# --------------------------------------------------------------------------- parsing


@dataclass
class _Row:
    """A manifest row as parsed: cells are stripped strings, ``None`` for missing."""

    number: int
    cells: dict[str, str | None]


@dataclass
class _Scan:
    report: ValidationReport
    rows: list[_Row]
    manifest_bytes: bytes
    file_hashes: dict[tuple[int, str], str]
    resolved: dict[tuple[int, str], str]
    extra_columns: list[str]
    task_columns: dict[str, tuple[str, str]]
    """column -> (task name, kind), the primary task first."""


def _find_manifest(root: Path) -> Path | None:
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def _parse_csv(text: str) -> tuple[list[str], list[_Row], list[RowIssue]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return [], [], [RowIssue(0, "", "the manifest is empty")]
    columns = [name.strip() for name in header]
    issues = [
        RowIssue(0, name, "the column appears more than once")
        for name, count in Counter(columns).items()
        if count > 1 and name
    ]
    rows = []
    for number, cells in enumerate(reader, start=1):
        if not any(cell.strip() for cell in cells):
            continue  # blank lines are not rows
        if len(cells) > len(columns):
            issues.append(RowIssue(number, "", f"the row has {len(cells)} cells but the header has {len(columns)}"))
        values = {name: (cells[i].strip() or None) if i < len(cells) else None for i, name in enumerate(columns)}
        rows.append(_Row(number, values))
    return columns, rows, issues


def _json_cell(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    return json.dumps(value)  # numbers, booleans, nested values: kept as their JSON text


def _parse_jsonl(text: str) -> tuple[list[str], list[_Row], list[RowIssue]]:
    columns: dict[str, None] = {}  # insertion-ordered set
    rows, issues = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            issues.append(RowIssue(number, "", f"invalid JSON ({err})"))
            continue
        if not isinstance(obj, dict):
            issues.append(RowIssue(number, "", f"expected a JSON object, got {type(obj).__name__}"))
            continue
        cells = {}
        for key, value in obj.items():
            name = str(key).strip()
            columns.setdefault(name)
            if name.startswith("labels:") and isinstance(value, list):
                value = "|".join(str(v) for v in value) or NO_LABELS  # a JSON list of labels
            if name in RESERVED_COLUMNS and isinstance(value, (dict, list)):
                issues.append(RowIssue(number, name, f"expected a string, got a JSON {type(value).__name__}"))
                value = None
            cells[name] = _json_cell(value)
        rows.append(_Row(number, cells))
    return list(columns), rows, issues


def _manifest_bytes(root: Path, limits: Limits) -> tuple[Path | None, bytes, list[RowIssue]]:
    """The manifest's path and bytes, or why there are none."""
    path = _find_manifest(root)
    if path is None:
        where = "it does not exist" if not root.exists() else "not a folder" if not root.is_dir() else ""
        reason = f"no {' or '.join(MANIFEST_NAMES)} in {root}" + (f" ({where})" if where else "")
        return None, b"", [RowIssue(0, "", reason)]
    try:
        return path, read_file(path, limits), []
    except InputError as err:
        return path, b"", [RowIssue(0, "", f"{path.name}: {err}")]


def _parse_manifest(path: Path, data: bytes) -> tuple[list[str], list[_Row], list[RowIssue]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [], [RowIssue(0, "", f"{path.name} is not UTF-8 text")]
    parse = _parse_csv if path.suffix == ".csv" else _parse_jsonl
    try:
        return parse(text)
    except csv.Error as err:  # NUL bytes, oversized fields, unterminated quotes
        return [], [], [RowIssue(0, "", f"{path.name} is not valid CSV ({err})")]


# --------------------------------------------------------------------------- validation


class _Resolver:
    """Resolves file cells to files inside the dataset folder, each sub-folder resolved once
    (a dataset of 100,000 files has a few hundred folders: resolving every path in full
    took most of a warm validation)."""

    def __init__(self, root: Path):
        self.root = str(root)
        self._folders: dict[str, str] = {"": self.root}
        self._folder_inside: dict[str, bool] = {}
        self.folders: dict[str, str] = {}
        """Each folder as named (under the root) -> its real path."""
        self.looked_at: dict[str, os.stat_result | None] = {}
        """Each file path looked at -> its ``lstat`` (``None``: missing)."""
        self.followed_links = False

    def _folder(self, relative: str) -> str:
        if relative not in self._folders:
            named = f"{self.root}/{relative}"
            self._folders[relative] = self.folders[named] = os.path.realpath(named)
        return self._folders[relative]

    def __call__(self, cell: str, modality: str) -> tuple[str | None, os.stat_result | None, bool, str | None]:
        """``(resolved path, its stat, whether the file is missing, None)``, or ``(None, None, False,
        why the cell is refused)``: it escapes the folder or has the wrong extension. The stat is
        ``None`` for a missing file."""
        relative = (cell.replace("\\", "/") if "\\" in cell else cell).rstrip("/")  # manifests written on Windows
        refused = None, None, False
        if relative[:1] == "/" or (relative[1:2] == ":" and _DRIVE.match(relative)):
            return *refused, f"absolute paths are not allowed, give a path relative to the dataset folder: {cell}"
        if ".." in relative and posixpath.normpath(relative).split("/")[0] == "..":
            return *refused, f"the path leaves the dataset folder: {cell}"
        parent, _, name = relative.rpartition("/")
        dot = name.rfind(".")
        suffix = name[dot:].lower() if 0 < dot < len(name) - 1 else ""
        if suffix not in _EXTENSIONS[modality]:
            expected = ", ".join(_EXTENSIONS[modality])
            return *refused, f"unsupported {modality} file type {suffix or '(none)'!r} (expected {expected}): {cell}"
        if "\0" in relative:
            return *refused, f"the path contains a NUL character: {cell!r}"
        folder = self._folder(parent)
        path = f"{folder}/{name}"
        linked = False
        try:
            stat: os.stat_result | None = None
            stat = self.looked_at[path] = os.lstat(path)
            if S_ISLNK(stat.st_mode):
                linked = self.followed_links = True
                try:
                    path = os.path.realpath(path, strict=True)
                    stat = os.stat(path)
                except FileNotFoundError:  # a dangling link: where it points decides the reason
                    path, stat = os.path.realpath(path), None
        except (FileNotFoundError, NotADirectoryError):
            stat = self.looked_at[path] = None
        except OSError as err:  # symlink loops, names too long for the file system
            self.followed_links = True  # not a verdict a later lstat could confirm
            why = "a symlink loop" if err.errno == errno.ELOOP else (err.strerror or str(err))
            return *refused, f"the path cannot be resolved ({why}): {cell}"
        except ValueError:  # a name the file system cannot encode (a lone surrogate from JSON)
            self.followed_links = True
            return *refused, f"the path is not a valid file name: {cell!r}"
        inside = self._inside(path) if linked else self._inside_folder(folder)  # a plain name in a folder: the folder decides
        if not inside:
            return *refused, f"the path is a link that leads outside the dataset folder: {cell}"
        return path, stat, stat is None, None

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root + "/")

    def _inside_folder(self, folder: str) -> bool:
        if folder not in self._folder_inside:
            self._folder_inside[folder] = self._inside(folder)
        return self._folder_inside[folder]


@contextlib.contextmanager
def _without_collector() -> Iterator[None]:
    """No cyclic garbage collection while a dataset is read: a load creates millions of objects
    (none in reference cycles), and each full collection they trigger walks every one of them
    again (a load of 100,000 rows took 5.5-6.3 s with it, 4.4 without)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _scan(root: str | Path, limits: Limits) -> _Scan:
    root = Path(root).resolve()
    manifest, manifest_bytes, issues = _manifest_bytes(root, limits)
    if manifest is None or issues:
        return _Scan(ValidationReport(issues, 0), [], manifest_bytes, {}, {}, [], {})
    memory = scan_memory.scan_path(str(manifest), limits)
    kept = scan_memory.recall(memory, manifest_bytes, str(root))
    if kept is not None:
        with contextlib.suppress(KeyError, TypeError, ValueError, IndexError):  # not what this version writes
            return _scan_from_plain(*kept, manifest_bytes)
    scan, resolver = _scan_manifest(root, manifest, manifest_bytes, limits)
    if not scan.report.fatal and not resolver.followed_links:
        files = list(resolver.looked_at)
        scan_memory.remember(
            memory, manifest_bytes, str(root), _scan_to_plain(scan, files), resolver.folders, resolver.looked_at
        )
    return scan


def _scan_to_plain(scan: _Scan, files: list[str]) -> dict[str, Any]:
    """The scan as JSON data, its valid rows only (the only ones a load keeps); each file as its
    position in ``files``."""
    bad = scan.report.bad_rows
    rows = [row for row in scan.rows if row.number not in bad]
    columns = list(dict.fromkeys(name for row in rows for name in row.cells))
    position = {file: i for i, file in enumerate(files)}
    plain_rows = []
    for row in rows:
        entry: list[Any] = [row.number, [row.cells.get(name) for name in columns]]
        for modality in FILE_MODALITIES:
            path = scan.resolved.get((row.number, modality))
            entry += [None, None] if path is None else [position[path], scan.file_hashes[(row.number, modality)]]
        plain_rows.append(entry)
    return {
        "n_rows": scan.report.n_rows,
        "issues": [[i.row, i.column, i.reason] for i in scan.report.issues],
        "task_columns": scan.task_columns,
        "extra_columns": scan.extra_columns,
        "columns": columns,
        "rows": plain_rows,
    }


def _scan_from_plain(kept: dict[str, Any], files: list[str], manifest_bytes: bytes) -> _Scan:
    columns = kept["columns"]
    rows, resolved, hashes = [], {}, {}
    for number, cells, *found in kept["rows"]:
        rows.append(_Row(number, dict(zip(columns, cells, strict=True))))
        for k, modality in enumerate(FILE_MODALITIES):
            index, digest = found[2 * k], found[2 * k + 1]
            if index is not None:
                resolved[(number, modality)] = files[index]
                hashes[(number, modality)] = digest
    return _Scan(
        report=ValidationReport([RowIssue(row, column, why) for row, column, why in kept["issues"]], kept["n_rows"]),
        rows=rows,
        manifest_bytes=manifest_bytes,
        file_hashes=hashes,
        resolved=resolved,
        extra_columns=list(kept["extra_columns"]),
        task_columns={column: (name, kind) for column, (name, kind) in kept["task_columns"].items()},
    )


def _scan_manifest(root: Path, manifest: Path, manifest_bytes: bytes, limits: Limits) -> tuple[_Scan, _Resolver]:
    """Every check of every row (the files' verdicts from :mod:`core.data.file_checks`)."""
    columns, rows, issues = _parse_manifest(manifest, manifest_bytes)
    task_columns: dict[str, tuple[str, str]] = {}
    for column in columns:
        try:
            task = task_for_column(column)
        except ValueError as err:
            issues.append(RowIssue(0, column, str(err)))
            continue
        if task is not None:
            task_columns[column] = task
    if PRIMARY in task_columns:  # the primary task first
        task_columns = {PRIMARY: task_columns[PRIMARY], **task_columns}
    if columns and not task_columns:
        found = ", ".join(repr(c) for c in columns[:10])
        issues.append(RowIssue(0, "label", f"the manifest has no 'label' column (columns found: {found})"))
    extra_columns = [c for c in columns if c and c not in RESERVED_COLUMNS and c not in task_columns]

    first_row_of_id: dict[str, int] = {}
    file_cells: list[tuple[int, str, str, str]] = []
    resolved: dict[tuple[int, str], str] = {}
    stats: dict[tuple[str, str], os.stat_result] = {}
    missing: set[tuple[str, str]] = set()
    resolve = _Resolver(root)
    for row in rows:
        cells = row.cells
        if PRIMARY in task_columns and cells.get(PRIMARY) is None:
            issues.append(RowIssue(row.number, "label", "the label is empty"))
        elif task_columns and all(cells.get(column) is None for column in task_columns):
            issues.append(RowIssue(row.number, "", "the row has no label for any task"))
        split = cells.get("split")
        if split is not None and split.lower() not in SPLITS:
            issues.append(
                RowIssue(row.number, "split", f"unknown split {split!r} (expected train, val, test or empty)")
            )
        record_id = cells.get("id")
        if record_id is not None:
            if record_id in first_row_of_id:
                issues.append(
                    RowIssue(
                        row.number, "id", f"duplicate id {record_id!r} (first used in row {first_row_of_id[record_id]})"
                    )
                )
            first_row_of_id.setdefault(record_id, row.number)
        if all(cells.get(m) is None for m in MODALITIES):
            issues.append(RowIssue(row.number, "", "the row has no image, audio or text"))
        text = cells.get("text")
        if text is not None:
            try:
                decode_text(text, limits)
            except InputError as err:
                issues.append(RowIssue(row.number, "text", str(err)))
        for modality in FILE_MODALITIES:
            cell = cells.get(modality)
            if cell is None:
                continue
            path, stat, absent, reason = resolve(cell, modality)
            if reason is not None:
                issues.append(RowIssue(row.number, modality, reason))
                continue
            file_cells.append((row.number, modality, cell, path))
            resolved[(row.number, modality)] = path
            if absent:
                missing.add((path, modality))
            else:
                stats[(path, modality)] = stat

    # Each file is decoded once however many rows name it, and not at all when its verdict is remembered.
    checks = check_files(stats, str(root), limits)
    file_hashes = {}
    for number, modality, cell, path in file_cells:
        check = FileCheck.missing_file() if (path, modality) in missing else checks[(path, modality)]
        if check.digest is None:
            issues.append(RowIssue(number, modality, check.reason(cell)))
        else:
            file_hashes[(number, modality)] = check.digest

    issues.sort(
        key=lambda issue: (issue.row, RESERVED_COLUMNS.index(issue.column) if issue.column in RESERVED_COLUMNS else -1)
    )
    report = ValidationReport(issues=issues, n_rows=len(rows))
    return _Scan(report, rows, manifest_bytes, file_hashes, resolved, extra_columns, task_columns), resolve


def validate_dataset(root: str | Path, limits: Limits | None = None) -> ValidationReport:
    """Check a dataset folder and report every problem at once; never raises for bad content.

    Parameters
    ----------
    root : str or Path
        The dataset folder (holding ``manifest.csv`` or ``manifest.jsonl``).
    limits : Limits, optional
        Size limits applied to the manifest and to every file and text (default: the configured ones).

    Returns
    -------
    ValidationReport
        ``report.ok`` is True when the dataset loads as it is.
    """
    with _without_collector():
        return _scan(root, limits or settings().limits).report


# --------------------------------------------------------------------------- loading


def _assign_splits(records: list[Record], unassigned: list[Record], seed: int) -> None:
    """Seeded stratified 70/15/15 split of ``unassigned``, class by class (of the primary task)."""
    by_label: dict[str, list[Record]] = {}
    for record in unassigned:
        by_label.setdefault(record.label or "", []).append(record)
    for label, members in by_label.items():
        # Seeding per class keeps a class's split unchanged when other classes are added.
        rng = np.random.default_rng([seed, zlib.crc32(label.encode("utf-8"))])
        order = rng.permutation(len(members))
        n = len(members)
        sizes = {name: round(frac * n) for name, frac in AUTO_SPLIT_FRACTIONS.items()}
        if n >= 3:  # every split gets at least one sample of a class that can afford it
            sizes = {name: max(1, size) for name, size in sizes.items()}
        n_val, n_test = sizes["val"], sizes["test"]
        for rank, index in enumerate(order):
            members[index].split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"


def _fingerprint(manifest_bytes: bytes, records: list[Record]) -> str:
    """Content hash of the dataset as loaded: manifest bytes, file contents and splits, no paths."""
    digest = hashlib.sha256(manifest_bytes)
    files = [m for m in MODALITIES if m in FILE_MODALITIES]
    lines = []
    for record in records:
        hashes = " ".join(f"{m}={record.content_hash(m)}" for m in files if getattr(record, m) is not None)
        lines.append(f"{record.row}\t{record.split}\t{hashes}\n")
    digest.update("".join(lines).encode())  # the same bytes as one update per record, hashed at once
    return digest.hexdigest()


def problems_summary(report: ValidationReport) -> str:
    """One line about a dataset's problems, the same wherever it is shown (the CLI's refusal,
    the dashboard's note on the rows it left out): how many, where, and the first one."""
    where = "the manifest" if report.fatal else f"{len(report.bad_rows)} of {report.n_rows} rows"
    return f"{len(report.issues)} problem(s) in {where} (first: {report.issues[0].format()})"


def load_dataset(
    root: str | Path,
    *,
    seed: int = 0,
    skip_invalid: bool = False,
    limits: Limits | None = None,
) -> Dataset:
    """Validate and load a dataset folder.

    Parameters
    ----------
    root : str or Path
        The dataset folder.
    seed : int
        Seed of the stratified split given to rows without a ``split``.
    skip_invalid : bool
        Drop bad rows (kept in ``Dataset.skipped``) instead of refusing the dataset.
    limits : Limits, optional
        Size limits for the manifest, files and texts (default: the configured ones, so the CLI
        and the dashboard accept the same datasets).

    Raises
    ------
    DatasetError
        Listing every problem, when there are problems and ``skip_invalid`` is False, when the
        manifest itself is unusable, or when no valid row remains.

    Examples
    --------
    >>> dataset = load_dataset("demo_data")  # doctest: +SKIP
    >>> dataset.split_sizes()  # doctest: +SKIP
    {'train': 2156, 'val': 360, 'test': 359}
    """
    with _without_collector():
        return _load(root, seed, skip_invalid, limits or settings().limits)


def _load(root: str | Path, seed: int, skip_invalid: bool, limits: Limits) -> Dataset:
    scan = _scan(root, limits)
    report = scan.report
    manifest = _find_manifest(Path(root)) or Path(root) / MANIFEST_NAMES[0]
    if report.fatal or (not report.ok and not skip_invalid):
        hint = "" if report.fatal else ", or skip the invalid rows"
        raise DatasetError(
            f"Cannot load the dataset in {manifest.parent}: {problems_summary(report)}. Fix {manifest.name}{hint}.",
            report,
            details=report.format(max_lines=200),
        )

    bad_rows = report.bad_rows
    records, unassigned = [], []
    as_path = _Paths()
    task_columns = list(scan.task_columns.items())
    primary_name, primary_kind = task_columns[0][1] if task_columns else (PRIMARY, SINGLE)  # no rows without tasks
    extra_columns = scan.extra_columns
    resolved, file_hashes = scan.resolved, scan.file_hashes
    for row in scan.rows:
        number = row.number
        if number in bad_rows:
            continue
        cells = row.cells
        targets = {name: parse_target(kind, cells.get(column)) for column, (name, kind) in task_columns}
        record = Record(
            row=number,
            id=cells.get("id") or f"row{number}",
            label=targets[primary_name] if primary_kind == SINGLE else None,
            split=(cells.get("split") or "").lower(),
            image=as_path(resolved.get((number, "image"))),
            audio=as_path(resolved.get((number, "audio"))),
            text=cells.get("text"),
            extras={name: cells.get(name) or "" for name in extra_columns},
            targets=targets,
        )
        for modality in FILE_MODALITIES:
            digest = file_hashes.get((number, modality))
            if digest is not None:
                record._hashes[modality] = digest
        records.append(record)
        if not record.split:
            unassigned.append(record)
    if not records:
        raise DatasetError(f"No valid row left in {manifest}.", report, details=report.format(max_lines=200))
    _assign_splits(records, unassigned, seed)
    tasks = [_task(name, kind, records) for name, kind in scan.task_columns.values()]
    return Dataset(
        root=Path(root).resolve(),
        records=records,
        classes=list(tasks[0].classes),
        tasks=tasks,
        fingerprint=_fingerprint(scan.manifest_bytes, records),
        skipped=report if not report.ok else None,
        limits=limits,
    )


class _Paths:
    """``Path`` objects of resolved path strings, each made from its folder's ``Path``: 3x faster
    than ``Path(text)`` (which parses every path again), and a loaded dataset of 100,000 rows
    holds 180,000 of them."""

    def __init__(self) -> None:
        self._folders: dict[str, Path] = {}

    def __call__(self, path: str | None) -> Path | None:
        if path is None:
            return None
        folder, _, name = path.rpartition("/")
        parent = self._folders.get(folder)
        if parent is None:
            parent = self._folders[folder] = Path(folder or "/")
        child = getattr(parent, "_make_child_relpath", None)  # CPython's pathlib, 3.11 to 3.13
        return child(name) if child is not None and name else Path(path)


def _task(name: str, kind: str, records: list[Record]) -> Task:
    """A task with the classes (or labels) its records use, in natural order."""
    if kind == MULTI:
        seen = {label for r in records for label in (r.targets.get(name) or ())}
    else:
        seen = {r.targets[name] for r in records if r.targets.get(name) is not None}
    return Task(name, kind, tuple(sorted(seen, key=natural_sort_key)))
