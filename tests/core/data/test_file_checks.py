"""Incremental validation: file verdicts remembered by (path, size, times), re-read only when changed."""

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from core.data import file_checks, load_dataset, validate_dataset
from core.settings import Limits
from tests.core.data.test_manifest import write_csv, write_png, write_wav


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    for i in range(6):
        write_png(root / "img" / f"{i}.png", value=10 * i)
        write_wav(root / "snd" / f"{i}.wav", freq=200.0 + 50 * i)
    (root / "img" / "bad.png").write_bytes(b"\x89PNG not really")
    rows = [f"r{i},c{i % 2},img/{i}.png,snd/{i}.wav,text {i}" for i in range(6)]
    write_csv(root, "id,label,image,audio,text\n" + "\n".join([*rows, "r6,c0,img/bad.png,,", "r7,c1,img/6.png,,"]) + "\n")
    return root


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """Names of the files decoded from now on (verdicts are remembered at once: no racy window)."""
    monkeypatch.setattr(file_checks, "RACY_SECONDS", 0.0)
    seen: list[str] = []
    real = file_checks._check_one
    monkeypatch.setattr(file_checks, "_check_one", lambda job: seen.append(Path(job[0]).name) or real(job))
    return seen


def test_a_warm_validation_decodes_nothing_and_reports_the_same(dataset, decoded):
    cold = validate_dataset(dataset)
    assert len(decoded) == 13  # 6 images, 6 clips, the bad image; the missing one is never opened
    decoded.clear()
    warm = validate_dataset(dataset)
    assert decoded == []
    assert [i.format() for i in warm.issues] == [i.format() for i in cold.issues]
    assert [(i.row, i.column) for i in warm.issues] == [(7, "image"), (8, "image")]
    assert "not an image we can read" in warm.issues[0].reason and warm.issues[0].reason.endswith("(img/bad.png)")
    assert warm.issues[1].reason == "file not found: img/6.png"


def test_only_changed_files_are_read_again(dataset, decoded):
    before = load_dataset(dataset, skip_invalid=True)
    target = dataset / "img" / "2.png"
    write_png(target, value=99)  # same size, new content
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    decoded.clear()
    after = load_dataset(dataset, skip_invalid=True)
    assert decoded == ["2.png"]
    record = next(r for r in after.records if r.id == "r2")
    assert record.content_hash("image") == hashlib.sha256(target.read_bytes()).hexdigest()
    assert after.fingerprint != before.fingerprint


def test_a_freshly_written_file_is_not_remembered(dataset, monkeypatch):
    seen = []
    real = file_checks._check_one
    monkeypatch.setattr(file_checks, "_check_one", lambda job: seen.append(job[0]) or real(job))
    validate_dataset(dataset)
    validate_dataset(dataset)
    assert len(seen) == 26  # written a moment ago: a second change in the same clock tick would go unseen


def test_verdicts_depend_on_the_limits(dataset, decoded):
    validate_dataset(dataset)
    decoded.clear()
    short = validate_dataset(dataset, Limits(max_audio_seconds=0.05))
    assert len(decoded) == 13
    assert sum("over the 0 s limit" in i.reason for i in short.issues) == 6
    assert len(short.bad_rows) == 8


def test_a_damaged_table_is_ignored(dataset, decoded, monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_CACHE_DIR", str(tmp_path / "cache"))
    validate_dataset(dataset)
    (table,) = (tmp_path / "cache" / "validation").glob("*.npz")
    table.write_bytes(b"PK\x03\x04 garbage")  # damaged: still looks like an archive
    shutil.rmtree(tmp_path / "cache" / "validation" / "scans")  # the whole scan is remembered too (test_scan_memory.py)
    decoded.clear()
    assert len(validate_dataset(dataset).issues) == 2
    assert len(decoded) == 13


def test_worker_processes_give_the_same_verdicts(dataset, monkeypatch):
    monkeypatch.setenv("FUSION_WORKERS", "0")
    inline = load_dataset(dataset, skip_invalid=True, limits=Limits(max_bytes=10_000_000))
    monkeypatch.setenv("FUSION_WORKERS", "2")
    monkeypatch.setattr(file_checks, "PER_WORKER", 1)
    pooled = load_dataset(dataset, skip_invalid=True, limits=Limits(max_bytes=20_000_000))  # other limits: not remembered
    assert pooled.fingerprint == inline.fingerprint
    assert [i.format() for i in pooled.skipped.issues] == [i.format() for i in inline.skipped.issues]


def test_from_a_server_thread_workers_start_from_a_fork_server(dataset, monkeypatch):
    """A dashboard validates on a request thread: its workers must not be forked from that process."""
    import threading

    from core import parallel

    monkeypatch.setenv("FUSION_WORKERS", "2")
    monkeypatch.setattr(file_checks, "PER_WORKER", 1)
    out = {}

    def job():
        out["method"] = parallel.start_method()
        out["report"] = validate_dataset(dataset, Limits(max_bytes=30_000_000))

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    assert out["method"] == "forkserver"
    assert [(i.row, i.column) for i in out["report"].issues] == [(7, "image"), (8, "image")]


def test_an_in_process_validation_leaves_the_collector_as_it_was(dataset, monkeypatch):
    """Without workers the files are checked here, inside the load's collector-off window."""
    import gc

    monkeypatch.setenv("FUSION_WORKERS", "0")
    gc.disable()
    try:
        validate_dataset(dataset)
        assert not gc.isenabled()
    finally:
        gc.enable()
