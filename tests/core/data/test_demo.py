import csv
from pathlib import Path

import numpy as np
import pytest

from core.data import build_demo, demo_is_built, load_dataset, validate_dataset
from core.data.demo import (
    COLUMNS,
    COPIES_PER_SOURCE,
    CORRUPTED_SNR_DB,
    INFORMATION,
    PARTIAL_CLUES,
    ROUTING_CLUES,
    VOICE_PITCH,
    VOICES_DIR,
    make_clue,
)
from core.io import decode_audio, decode_image, read_file

N_SOURCE = 60


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("demo") / "digits", seed=7, progress=False, n_source=N_SOURCE)


@pytest.fixture(scope="module")
def rows(demo: Path) -> list[dict[str, str]]:
    with open(demo / "manifest.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_builds_byte_identical_datasets(demo: Path, tmp_path: Path) -> None:
    again = build_demo(tmp_path / "again", seed=7, progress=False, n_source=N_SOURCE)
    assert tree_bytes(again) == tree_bytes(demo)
    other = build_demo(tmp_path / "other", seed=8, progress=False, n_source=N_SOURCE)
    assert (other / "manifest.csv").read_bytes() != (demo / "manifest.csv").read_bytes()


def test_built_demo_is_reused_and_foreign_folders_are_not_overwritten(demo: Path, tmp_path: Path) -> None:
    assert demo_is_built(demo, seed=7, n_source=N_SOURCE)
    assert not demo_is_built(demo, seed=8, n_source=N_SOURCE)
    stamp = (demo / "manifest.csv").stat().st_mtime_ns
    build_demo(demo, seed=7, progress=False, n_source=N_SOURCE)
    assert (demo / "manifest.csv").stat().st_mtime_ns == stamp

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError):
        build_demo(foreign, progress=False, n_source=N_SOURCE)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_splits_share_no_source_image(rows: list[dict[str, str]]) -> None:
    sources = {split: {r["source_index"] for r in rows if r["split"] == split} for split in ("train", "val", "test")}
    assert sum(len(s) for s in sources.values()) == N_SOURCE
    assert not (
        sources["train"] & sources["val"] or sources["train"] & sources["test"] or sources["val"] & sources["test"]
    )
    counts = {split: sum(r["split"] == split for r in rows) for split in sources}
    assert counts == {split: COPIES_PER_SOURCE[split] * len(sources[split]) for split in sources}
    assert {r["label"] for r in rows if r["split"] == "test"} == {str(d) for d in range(10)}


def test_state_columns_match_the_cells(rows: list[dict[str, str]]) -> None:
    for r in rows:
        assert (r["image"] == "") == (r["image_state"] == "missing") == (r["image_label"] == "")
        assert (r["image_corruption"] != "none") == (r["image_state"] == "corrupted")
        assert (r["audio"] == "") == (r["audio_state"] == "missing") == (r["audio_snr_db"] == "") == (r["voice"] == "")
        assert (r["audio"] == "") == (r["audio_label"] == "") == (r["label:pitch"] == "")
        assert (r["text"] == "") == (r["text_state"] == "missing") == (r["clue_candidates"] == "")
        if r["audio"]:
            digit, variant = r["voice"].split("_")
            assert digit == r["audio_label"]
            assert r["label:pitch"] == ("high" if VOICE_PITCH[variant] >= 55 else "low")
            snr = float(r["audio_snr_db"])
            low, high = CORRUPTED_SNR_DB if r["audio_state"] == "corrupted" else (10, 30)
            assert low <= snr <= high
        candidates = r["clue_candidates"].split()
        if r["text_state"] == "exact":
            assert candidates == [r["label"]]
        elif r["text_state"] == "partial":
            assert r["label"] in candidates and 2 <= len(candidates) <= 5
        elif r["text_state"] == "routing":
            assert candidates == [str(d) for d in range(10)]
        both_bad = r["image_state"] != "clean" and r["audio_state"] != "clean"
        assert not both_bad or r["text_state"] == "exact"
        assert r["image"] or r["audio"] or r["text"]


def test_information_kinds_are_what_they_say(rows: list[dict[str, str]]) -> None:
    assert {r["information"] for r in rows} == set(INFORMATION)
    assert {r["information"] for r in rows if r["split"] == "test"} == set(INFORMATION)
    digit_columns = {"image": "image_label", "audio": "audio_label"}
    for r in rows:
        kind = r["information"]
        # The modalities that show the label clearly, from the ground-truth columns.
        shown = {m for m, column in digit_columns.items() if r[f"{m}_state"] == "clean" and r[column] == r["label"]}
        shown |= {"text"} if r["text_state"] == "exact" else set()
        if kind == "synergy":
            # Both show a digit clearly, only one of them the label; the text alone says which.
            assert r["image_state"] == r["audio_state"] == "clean" and r["text_state"] == "routing"
            assert r["image_label"] != r["audio_label"]
            (pointed,) = [m for m, phrasings in ROUTING_CLUES.items() if r["text"] in phrasings]
            assert shown == {pointed}
            continue
        assert r["image_label"] in ("", r["label"]) and r["audio_label"] in ("", r["label"])
        assert r["text_state"] in ("exact", "partial", "missing")
        if kind == "redundant":
            assert shown == {"image", "audio", *(["text"] if r["text"] else [])}
        else:
            assert shown == {kind.removeprefix("unique-")}


def test_pitch_is_independent_of_the_digit(tmp_path: Path) -> None:
    """The voice variant is drawn on its own: high and low pitch are spread evenly over the digits."""
    assert sorted(p >= 55 for p in VOICE_PITCH.values()) == [False] * 4 + [True] * 4
    build_demo(tmp_path / "big", seed=1, progress=False, n_source=600)
    with open(tmp_path / "big" / "manifest.csv", newline="", encoding="utf-8") as file:
        voiced = [r for r in csv.DictReader(file) if r["audio"]]
    for digit in map(str, range(10)):
        pitches = [r["label:pitch"] for r in voiced if r["audio_label"] == digit]
        assert 0.3 < pitches.count("high") / len(pitches) < 0.7
        pitches = [r["label:pitch"] for r in voiced if r["label"] == digit]
        assert 0.3 < pitches.count("high") / len(pitches) < 0.7


def test_demo_validates_and_loads(demo: Path, rows: list[dict[str, str]]) -> None:
    assert validate_dataset(demo).ok
    dataset = load_dataset(demo)
    assert dataset.classes == [str(d) for d in range(10)]
    assert len(dataset.records) == len(rows)
    assert list(rows[0]) == COLUMNS
    assert {"information", "image_label", "audio_label"} <= set(dataset.records[0].extras)
    assert [t.name for t in dataset.tasks] == ["label", "pitch"] and dataset.task("pitch").classes == ("high", "low")
    with_both = next(r for r in dataset.records if r.image and r.audio)
    assert decode_image(read_file(with_both.image)).shape == (32, 32, 3)
    assert decode_audio(read_file(with_both.audio)).shape == (16_000,)
    readme = (demo / "README.txt").read_text()
    assert all(f"\n  {column} " in readme for column in COLUMNS)


def test_partial_clues_are_well_formed() -> None:
    for clue in PARTIAL_CLUES:
        assert 2 <= len(clue.candidates) <= 5 and clue.phrasings
    for digit in range(10):
        assert sum(digit in clue.candidates for clue in PARTIAL_CLUES) >= 5
    rng = np.random.default_rng(0)
    texts = {make_clue(7, "exact", rng)[0] for _ in range(200)}
    assert {"seven", "the digit after six", "two more than five"} <= texts
    assert make_clue(3, "missing", rng)[0] == ""


def test_voice_prototypes_are_committed_and_small() -> None:
    wavs = sorted(VOICES_DIR.glob("*.wav"))
    assert {p.stem.split("_")[0] for p in wavs} == {str(d) for d in range(10)}
    assert len(wavs) >= 60
    assert sum(p.stat().st_size for p in wavs) < 2 * 1024 * 1024
