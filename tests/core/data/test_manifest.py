import contextlib
import gc
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import (
    load_dataset,
    load_sample,
    natural_sort_key,
    record_to_sample,
    validate_dataset,
)
from core.errors import DatasetError, FusionError
from core.io import encode_png, encode_wav
from core.settings import Limits


def write_png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(np.full((8, 8), value, dtype=np.uint8)))
    return path


def write_wav(path: Path, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 16_000
    path.write_bytes(encode_wav((0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)))
    return path


def write_csv(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.csv").write_text(text, encoding="utf-8")
    return root


def issue_tuples(report) -> list[tuple[int, str]]:
    return [(issue.row, issue.column) for issue in report.issues]


@pytest.fixture
def good_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    write_png(root / "img" / "a.png")
    write_wav(root / "snd" / "a.wav")
    write_csv(
        root,
        "id,label,split,image,audio,text,speaker\n"
        "s1,cat,train,img/a.png,snd/a.wav,  a   small cat ,ann\n"
        "s2,dog,test,,snd/a.wav,,bob\n"
        "s3,dog,val,img/a.png,,,\n",
    )
    return root


def test_every_bad_row_is_reported_at_once(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_png(root / "img" / "ok.png")
    (root / "img" / "notes.txt").write_text("hi")
    write_csv(
        root,
        "label,split,image,text\n"
        "a,train,img/ok.png,\n"
        "a,train,img/missing.png,\n"
        ",train,img/ok.png,\n"
        "a,training,img/ok.png,\n"
        "a,train,,\n"
        "b,train,img/notes.txt,\n",
    )
    report = validate_dataset(root)
    assert not report.ok
    assert report.n_rows == 6
    assert issue_tuples(report) == [(2, "image"), (3, "label"), (4, "split"), (5, ""), (6, "image")]
    reasons = [issue.reason for issue in report.issues]
    assert reasons[0] == "file not found: img/missing.png"
    assert reasons[1] == "the label is empty"
    assert "unknown split 'training'" in reasons[2]
    assert reasons[3] == "the row has no image, audio or text"
    assert "unsupported image file type '.txt'" in reasons[4]
    formatted = report.format()
    assert "row 2, column image: file not found: img/missing.png" in formatted
    assert report.bad_rows == {2, 3, 4, 5, 6}


def test_paths_leaving_the_folder_are_refused(tmp_path: Path) -> None:
    outside = write_png(tmp_path / "outside.png")
    root = tmp_path / "ds"
    write_png(root / "inside.png")
    (root / "escape.png").symlink_to(outside)
    (root / "alias.png").symlink_to(root / "inside.png")
    write_csv(
        root,
        "label,image\n"
        "a,../outside.png\n"
        f"a,{outside}\n"
        "a,escape.png\n"
        "a,sub/../../outside.png\n"
        "a,alias.png\n"
        "a,sub/../inside.png\n",
    )
    report = validate_dataset(root)
    assert issue_tuples(report) == [(1, "image"), (2, "image"), (3, "image"), (4, "image")]
    assert "leaves the dataset folder" in report.issues[0].reason
    assert "absolute paths are not allowed" in report.issues[1].reason
    assert "link that leads outside" in report.issues[2].reason
    assert "leaves the dataset folder" in report.issues[3].reason


def test_unreadable_oversized_and_invalid_content(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "img").mkdir(parents=True)
    (root / "img" / "garbage.png").write_bytes(b"\x89PNG not really")
    (root / "img" / "empty.jpg").write_bytes(b"")
    write_wav(root / "snd" / "big.wav")
    write_csv(
        root,
        "label,image,audio,text\n"
        "a,img/garbage.png,,\n"
        "a,img/empty.jpg,,\n"
        "a,,snd/big.wav,\n"
        "a,,,bell\x07ring\n"
        f"a,,,{'x' * 200}\n",
    )
    report = validate_dataset(root, Limits(max_bytes=2000, max_text_chars=100))
    assert issue_tuples(report) == [(1, "image"), (2, "image"), (3, "audio"), (4, "text"), (5, "text")]
    assert "not an image we can read" in report.issues[0].reason
    assert "empty" in report.issues[1].reason
    assert "over the" in report.issues[2].reason and "snd/big.wav" in report.issues[2].reason
    assert "control characters" in report.issues[3].reason
    assert "200 characters" in report.issues[4].reason


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no manifest.csv or manifest.jsonl"),
        (b"", "empty"),
        (b"\xff\xfe\x00garbage\x80", "not UTF-8"),
        (b"name,image\nx,a.png\n", "no 'label' column"),
        (b"label,label\na,b\n", "more than once"),
    ],
)
def test_manifest_level_problems_are_row_zero_and_fatal(tmp_path: Path, content: bytes | None, expected: str) -> None:
    tmp_path.mkdir(exist_ok=True)
    if content is not None:
        (tmp_path / "manifest.csv").write_bytes(content)
    report = validate_dataset(tmp_path)
    assert report.issues[0].row == 0
    assert expected in report.issues[0].reason
    with pytest.raises(DatasetError):
        load_dataset(tmp_path, skip_invalid=True)


def test_oversized_manifest_is_an_issue(tmp_path: Path) -> None:
    write_csv(tmp_path, "label,text\n" + "a,hello\n" * 100)
    report = validate_dataset(tmp_path, Limits(max_bytes=100))
    assert [(i.row, "over the" in i.reason) for i in report.issues] == [(0, True)]


def test_jsonl_manifest(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    lines = [
        {"label": 3, "image": "a.png", "text": None, "note": "first"},
        {"label": "7", "text": "seven", "split": "TEST"},
        "not json {",
        {"label": "7", "image": None, "audio": ""},
        ["a", "list"],
    ]
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    (tmp_path / "manifest.jsonl").write_text(text + "\n\n", encoding="utf-8")
    report = validate_dataset(tmp_path)
    assert issue_tuples(report) == [(3, ""), (4, ""), (5, "")]
    assert "invalid JSON" in report.issues[0].reason
    assert "no image, audio or text" in report.issues[1].reason
    assert "expected a JSON object" in report.issues[2].reason

    dataset = load_dataset(tmp_path, skip_invalid=True)
    assert [(r.row, r.label, r.present()) for r in dataset.records] == [(1, "3", ["image"]), (2, "7", ["text"])]
    assert dataset.records[0].extras == {"note": "first"}
    assert dataset.records[1].extras == {"note": ""}
    assert dataset.records[1].split == "test"
    assert dataset.skipped is not None and dataset.skipped.bad_rows == {3, 4, 5}


def test_csv_is_preferred_over_jsonl(tmp_path: Path) -> None:
    write_csv(tmp_path, "label,text\nfrom-csv,hello\n")
    (tmp_path / "manifest.jsonl").write_text('{"label": "from-jsonl", "text": "hi"}\n')
    assert [r.label for r in load_dataset(tmp_path).records] == ["from-csv"]


def _text_dataset(root: Path, n_per_class: int, classes: list[str]) -> Path:
    rows = [f"{label},{label} sample {i}" for label in classes for i in range(n_per_class)]
    return write_csv(root, "label,text\n" + "\n".join(rows) + "\n")


def test_auto_split_is_stratified_and_deterministic(tmp_path: Path) -> None:
    root = _text_dataset(tmp_path / "ds", 40, ["b", "a", "c"])
    first = load_dataset(root, seed=3)
    again = load_dataset(root, seed=3)
    other = load_dataset(root, seed=4)
    assert [r.split for r in first.records] == [r.split for r in again.records]
    assert [r.split for r in first.records] != [r.split for r in other.records]
    for split, expected in {"train": 28, "val": 6, "test": 6}.items():
        assert first.class_counts(split) == {"a": expected, "b": expected, "c": expected}
    assert first.split_sizes() == {"train": 84, "val": 18, "test": 18}
    assert first.fingerprint == again.fingerprint != other.fingerprint


def test_given_splits_are_kept_and_only_empty_cells_are_assigned(tmp_path: Path) -> None:
    rows = [f"a,{'test' if i < 5 else ''},text {i}" for i in range(25)]
    write_csv(tmp_path, "label,split,text\n" + "\n".join(rows) + "\n")
    dataset = load_dataset(tmp_path)
    assert all(r.split == "test" for r in dataset.records[:5])
    assert dataset.split_sizes() == {"train": 14, "val": 3, "test": 8}


def test_classes_use_natural_sort(tmp_path: Path) -> None:
    write_csv(tmp_path, "label,text\n10,x\n2,x\n1,x\nb,x\nA,x\n")
    assert load_dataset(tmp_path).classes == ["1", "2", "10", "A", "b"]
    assert sorted(["img10", "img9", "img1"], key=natural_sort_key) == ["img1", "img9", "img10"]


def test_fingerprint_is_path_independent_and_tracks_content(good_dataset: Path, tmp_path: Path) -> None:
    original = load_dataset(good_dataset).fingerprint
    moved = shutil.copytree(good_dataset, tmp_path / "elsewhere" / "copy")
    assert load_dataset(moved).fingerprint == original
    write_png(moved / "img" / "a.png", value=129)
    assert load_dataset(moved).fingerprint != original


def test_records_and_samples(good_dataset: Path) -> None:
    dataset = load_dataset(good_dataset)
    assert dataset.classes == ["cat", "dog"]
    assert dataset.modalities() == ["audio", "image", "text"]
    assert dataset.modality_coverage() == pytest.approx({"audio": 2 / 3, "image": 2 / 3, "text": 1 / 3})
    first = dataset.records[0]
    assert (first.row, first.id, first.split) == (1, "s1", "train")
    assert first.image == (good_dataset / "img" / "a.png").resolve()
    assert first.extras == {"speaker": "ann"}
    assert first.present() == ["audio", "image", "text"]
    assert first.content_hash("image") == hashlib.sha256((good_dataset / "img" / "a.png").read_bytes()).hexdigest()
    assert first.content_hash("text") == hashlib.sha256(first.text.encode()).hexdigest()
    with pytest.raises(ValueError):
        dataset.records[2].content_hash("audio")

    decoded = load_sample(first)
    assert decoded.image.shape == (8, 8, 3) and decoded.image.dtype == np.uint8
    assert decoded.audio.dtype == np.float32 and decoded.audio.shape == (1600,)
    assert decoded.text == "a small cat"
    assert (decoded.label, decoded.id, decoded.meta) == ("cat", "s1", {"speaker": "ann"})

    raw = record_to_sample(dataset.records[1])
    assert raw.image is None and raw.text is None
    assert raw.audio == (good_dataset / "snd" / "a.wav").read_bytes()
    assert raw.present() == ["audio"]


def test_errors_refuse_the_dataset_unless_skipped(good_dataset: Path) -> None:
    manifest = good_dataset / "manifest.csv"
    manifest.write_text(manifest.read_text() + "s4,,,img/none.png,,,\ns1,cat,,,,hello,\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(good_dataset)
    assert isinstance(caught.value, FusionError)
    message = str(caught.value)
    assert "\n" not in message, "the message is one line; the problems are its details"
    assert "3 problem(s) in 2 of 5 rows (first: row 4, column label: the label is empty)" in message
    assert "skip the invalid rows" in message
    details = caught.value.details
    assert "row 4, column label: the label is empty" in details
    assert "row 4, column image: file not found: img/none.png" in details
    assert "row 5, column id: duplicate id 's1'" in details
    assert len(caught.value.report.issues) == 3

    dataset = load_dataset(good_dataset, skip_invalid=True)
    assert [r.id for r in dataset.records] == ["s1", "s2", "s3"]
    assert dataset.skipped.bad_rows == {4, 5}


def test_a_load_leaves_no_reference_cycles(good_dataset: Path, tmp_path: Path) -> None:
    """The dashboard freezes a loaded dataset without a garbage collection after the load
    (``keep_for_the_process(..., makes_cycles=False)``): at 100,000 rows that pass walks every new
    object. Cycles made by a load would stay in memory for good, so there must be none: cold
    (files checked, scan remembered) or warm, with bad rows left out or not."""
    manifest = good_dataset / "manifest.csv"
    manifest.write_text(manifest.read_text() + "s4,,,img/none.png,,,\n")
    for _ in range(2):  # cold, then from the remembered scan
        gc.collect()
        for skip_invalid in (True, False):
            with contextlib.suppress(DatasetError):
                load_dataset(good_dataset, skip_invalid=skip_invalid)
        assert gc.collect() == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=400), name=st.sampled_from(["manifest.csv", "manifest.jsonl"]))
def test_random_manifest_bytes_only_produce_issues(tmp_path: Path, content: bytes, name: str) -> None:
    (tmp_path / name).write_bytes(content)
    try:
        report = validate_dataset(tmp_path)
        assert report.n_rows >= 0
        with contextlib.suppress(DatasetError):
            load_dataset(tmp_path)
    finally:
        (tmp_path / name).unlink()


def test_find_records_by_part_of_an_id_or_a_label() -> None:
    from core.data import Record, find_records

    records = [Record(row=i + 1, id=f"row-{i}", split="test", label=str(i % 3), text="t") for i in range(12)]
    assert find_records(records, "  ", 5) == (records[:5], 12)
    assert find_records(records, "ROW-1", 10) == ([records[1], records[10], records[11]], 3)
    shown, total = find_records(records, "2", 2)  # label "2": rows 2, 5, 8, 11 (row-2's id matches too)
    assert total == 4 and shown == [records[2], records[5]]
    assert find_records(records, "zzz", 5) == ([], 0)


def test_a_record_by_its_id(good_dataset: Path) -> None:
    from core.errors import UsageError

    dataset = load_dataset(good_dataset)
    last = dataset.records[-1]
    assert dataset.record(last.id) is last
    assert [dataset.record(r.id) for r in dataset.records] == dataset.records
    with pytest.raises(UsageError, match="no record with id 'nope'"):
        dataset.record("nope")
