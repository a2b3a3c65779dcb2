"""A dataset's scan remembered whole: an unchanged dataset loads without being scanned again,
and any change to its manifest, folders or files is noticed."""

import os
from pathlib import Path

import pytest

from core.data import file_checks, load_dataset, manifest, scan_memory, validate_dataset
from core.settings import settings
from tests.core.data.test_manifest import write_csv, write_png, write_wav


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    for i in range(4):
        write_png(root / "img" / f"{i}.png", value=20 * i)
        write_wav(root / "snd" / f"{i}.wav", freq=300.0 + 40 * i)
    rows = [f"r{i},c{i % 2},img/{i}.png,snd/{i}.wav,text {i},{'ab'[i % 2]}" for i in range(4)]
    write_csv(root, "id,label,image,audio,text,source\n" + "\n".join([*rows, "r4,c0,img/9.png,,later,a", "r5,c1,,,,b"]) + "\n")
    return root


@pytest.fixture
def scans(monkeypatch) -> list[str]:
    """Folders scanned in full from now on (files are remembered at once: no racy window)."""
    monkeypatch.setattr(file_checks, "RACY_SECONDS", 0.0)
    seen: list[str] = []
    real = manifest._scan_manifest
    monkeypatch.setattr(manifest, "_scan_manifest", lambda root, *args: seen.append(root.name) or real(root, *args))
    return seen


def _summary(dataset) -> list[tuple]:
    return [
        (r.row, r.id, r.label, r.split, r.image, r.audio, r.text, r.extras, r.targets, r.content_hash("image") if r.image else None)
        for r in dataset.records
    ]


def _bump(path: Path) -> None:
    """A new mtime, one second on (as an edit a second later would leave it)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_an_unchanged_dataset_loads_from_its_remembered_scan_with_the_same_result(dataset, scans):
    cold = load_dataset(dataset, skip_invalid=True)
    assert scans == ["ds"]
    warm = load_dataset(dataset, skip_invalid=True)
    report = validate_dataset(dataset)
    assert scans == ["ds"]  # neither the load nor the validation scanned again
    assert _summary(warm) == _summary(cold)
    assert warm.fingerprint == cold.fingerprint and warm.tasks == cold.tasks
    assert [i.format() for i in warm.skipped.issues] == [i.format() for i in cold.skipped.issues]
    assert [(i.row, i.column) for i in report.issues] == [(5, "image"), (6, "")]
    assert isinstance(warm.records[0].image, Path) and warm.records[0].image == (dataset / "img" / "0.png").resolve()


def test_a_changed_file_is_noticed_and_checked_again(dataset, scans):
    load_dataset(dataset, skip_invalid=True)
    broken = dataset / "img" / "2.png"
    broken.write_bytes(b"\x89PNG damaged")
    _bump(broken)
    after = load_dataset(dataset, skip_invalid=True)
    assert scans == ["ds", "ds"]
    assert "r2" not in {r.id for r in after.records}
    assert any(i.row == 3 and "not an image" in i.reason for i in after.skipped.issues)


def test_a_missing_file_that_appears_is_noticed(dataset, scans):
    assert "r4" not in {r.id for r in load_dataset(dataset, skip_invalid=True).records}
    write_png(dataset / "img" / "9.png", value=7)
    assert "r4" in {r.id for r in load_dataset(dataset, skip_invalid=True).records}
    assert scans == ["ds", "ds"]


def test_an_edited_manifest_is_scanned_again(dataset, scans):
    load_dataset(dataset, skip_invalid=True)
    text = (dataset / "manifest.csv").read_text().replace("text 1", "text one")
    (dataset / "manifest.csv").write_text(text)
    assert next(r for r in load_dataset(dataset, skip_invalid=True).records if r.id == "r1").text == "text one"
    assert scans == ["ds", "ds"]


def test_a_folder_that_now_leads_elsewhere_is_noticed(dataset, scans, tmp_path):
    load_dataset(dataset, skip_invalid=True)
    (dataset / "snd").rename(tmp_path / "elsewhere")
    (dataset / "snd").symlink_to(tmp_path / "elsewhere")  # same files, now outside the dataset folder
    report = validate_dataset(dataset)
    assert scans == ["ds", "ds"]
    outside = [i.row for i in report.issues if i.column == "audio" and "leads outside the dataset folder" in i.reason]
    assert outside == [1, 2, 3, 4]


def test_a_damaged_memory_is_ignored(dataset, scans, tmp_path):
    cold = load_dataset(dataset, skip_invalid=True)
    kept = scan_memory.scan_path(str((dataset / "manifest.csv").resolve()), settings().limits)
    kept.write_bytes(b"PK\x03\x04 not an archive")
    assert _summary(load_dataset(dataset, skip_invalid=True)) == _summary(cold)
    assert scans == ["ds", "ds"]


def test_scans_that_followed_a_link_or_saw_fresh_files_are_not_remembered(dataset, monkeypatch, tmp_path):
    seen = []
    real = manifest._scan_manifest
    monkeypatch.setattr(manifest, "_scan_manifest", lambda root, *args: seen.append(root.name) or real(root, *args))
    load_dataset(dataset, skip_invalid=True)
    load_dataset(dataset, skip_invalid=True)
    assert seen == ["ds", "ds"]  # written a moment ago: a second change in the same clock tick would go unseen
    monkeypatch.setattr(file_checks, "RACY_SECONDS", 0.0)
    (dataset / "img" / "3.png").unlink()
    (dataset / "img" / "3.png").symlink_to(dataset / "img" / "0.png")
    load_dataset(dataset, skip_invalid=True)
    load_dataset(dataset, skip_invalid=True)
    assert seen == ["ds", "ds", "ds", "ds"]


def test_an_empty_manifest_and_names_no_file_system_can_hold_are_reported_not_raised(tmp_path, monkeypatch):
    from core.errors import DatasetError

    monkeypatch.setattr(file_checks, "RACY_SECONDS", 0.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.jsonl").write_text("\n\n")
    with pytest.raises(DatasetError, match="No valid row"):
        load_dataset(empty, skip_invalid=True)
    odd = tmp_path / "odd"
    odd.mkdir()
    rows = ['{"label": "a", "image": "\\udc80.png"}', '{"label": "b", "image": "\\ud800.png"}', '{"label": "c", "text": "fine"}']
    (odd / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    for _ in range(2):  # the second time too: such a scan is not kept
        report = validate_dataset(odd)
        assert [(i.row, i.column) for i in report.issues] == [(1, "image"), (2, "image")]
        assert report.issues[0].reason.startswith("file not found")
        assert "not a valid file name" in report.issues[1].reason
    assert [r.label for r in load_dataset(odd, skip_invalid=True).records] == ["c"]
