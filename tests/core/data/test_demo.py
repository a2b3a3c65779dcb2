import csv
from pathlib import Path

import numpy as np
import pytest

from core.data import build_demo, demo_is_built, load_dataset, validate_dataset
from core.data.demo import CORRUPTED_SNR_DB, PARTIAL_CLUES, VOICES_DIR, make_clue
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
    assert counts == {"train": 2 * len(sources["train"]), "val": len(sources["val"]), "test": len(sources["test"])}
    assert {r["label"] for r in rows if r["split"] == "test"} == {str(d) for d in range(10)}


def test_state_columns_match_the_cells(rows: list[dict[str, str]]) -> None:
    for r in rows:
        assert (r["image"] == "") == (r["image_state"] == "missing")
        assert (r["image_corruption"] != "none") == (r["image_state"] == "corrupted")
        assert (r["audio"] == "") == (r["audio_state"] == "missing") == (r["audio_snr_db"] == "") == (r["voice"] == "")
        assert (r["text"] == "") == (r["text_state"] == "missing") == (r["clue_candidates"] == "")
        if r["audio"]:
            assert r["voice"].startswith(r["label"] + "_")
            snr = float(r["audio_snr_db"])
            low, high = CORRUPTED_SNR_DB if r["audio_state"] == "corrupted" else (10, 30)
            assert low <= snr <= high
        candidates = r["clue_candidates"].split()
        if r["text_state"] == "exact":
            assert candidates == [r["label"]]
        elif r["text_state"] == "partial":
            assert r["label"] in candidates and 2 <= len(candidates) <= 5
        both_bad = r["image_state"] != "clean" and r["audio_state"] != "clean"
        assert not both_bad or r["text_state"] == "exact"
        assert r["image"] or r["audio"] or r["text"]


def test_demo_validates_and_loads(demo: Path, rows: list[dict[str, str]]) -> None:
    assert validate_dataset(demo).ok
    dataset = load_dataset(demo)
    assert dataset.classes == [str(d) for d in range(10)]
    assert len(dataset.records) == len(rows)
    assert list(rows[0]) == [
        "id", "label", "split", "image", "audio", "text", "image_state", "audio_state",
        "text_state", "image_corruption", "audio_snr_db", "voice", "source_index", "clue_candidates",
    ]  # fmt: skip
    with_both = next(r for r in dataset.records if r.image and r.audio)
    assert decode_image(read_file(with_both.image)).shape == (32, 32, 3)
    assert decode_audio(read_file(with_both.audio)).shape == (16_000,)
    assert (demo / "README.txt").read_text().count("\n") > 10


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
