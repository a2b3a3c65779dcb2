"""Property-based fuzzing: random and mutated bytes through every decoder, random manifests
with hostile paths through validation and loading. The only exceptions allowed are our typed
ones, each example is time-bounded, and no loaded record ever points outside its folder."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.hostile_inputs import mutate, seed_files
from core.data import load_dataset, validate_dataset
from core.errors import DatasetError, InputError
from core.io import decode_audio, decode_image, decode_text
from core.settings import Limits

# Small limits keep a lucky mutation (a header now claiming 60 s at 384 kHz) cheap to refuse.
LIMITS = Limits(max_bytes=1 << 20, max_image_pixels=2_000_000, max_audio_seconds=20.0, max_text_chars=2000)
DECODERS = {
    "image": lambda data: decode_image(data, LIMITS),
    "audio": lambda data: decode_audio(data, LIMITS),
    "text": lambda data: decode_text(data, LIMITS),
}
# Generous per-example deadline: the machine is shared.
FUZZ = settings(max_examples=1000, deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])


def decode_or_refuse(decoder: str, data: bytes) -> None:
    """Decoding either succeeds with a sane value or raises an InputError; anything else fails the test."""
    try:
        value = DECODERS[decoder](data)
    except InputError as err:
        assert str(err), "every refusal carries a message"
        return
    if decoder == "image":
        assert value.dtype == np.uint8 and value.ndim == 3 and value.shape[2] == 3
        assert value.shape[0] * value.shape[1] <= LIMITS.max_image_pixels
    elif decoder == "audio":
        assert value.dtype == np.float32 and value.ndim == 1 and np.isfinite(value).all()
        assert value.size <= LIMITS.max_audio_seconds * 16_000 + 16
    else:
        assert isinstance(value, str) and value and len(value) <= LIMITS.max_text_chars


@pytest.mark.timeout(240)
@FUZZ
@given(data=st.binary(min_size=0, max_size=2048), decoder=st.sampled_from(sorted(DECODERS)))
def test_random_bytes_only_raise_input_errors(data, decoder):
    decode_or_refuse(decoder, data)


MAGIC = [
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\x00\x10\x00\x00WAVEfmt ",
    b"fLaC",
    b"OggS",
    b"ID3",
    b"\xff\xfb",
    b"GIF89a",
    b"BM",
    b"\xff\xd8\xff",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
]


@pytest.mark.timeout(240)
@FUZZ
@given(magic=st.sampled_from(MAGIC), rest=st.binary(max_size=1024), decoder=st.sampled_from(["image", "audio"]))
def test_known_signatures_with_random_bodies(magic, rest, decoder):
    """Random bodies behind real magic numbers reach the format parsers, not just the sniffers."""
    decode_or_refuse(decoder, magic + rest)


@pytest.mark.timeout(300)
@settings(max_examples=2000, deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["png", "wav", "flac"]), seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 4))
def test_mutated_real_files_only_raise_input_errors(kind, seed, rounds):
    """Bit flips, overwrites, truncations and splices of valid PNG/WAV/FLAC bytes."""
    rng = np.random.default_rng(seed)
    data = seed_files()[kind]
    for _ in range(rounds):
        data = mutate(data, rng)
    decode_or_refuse("image" if kind == "png" else "audio", data)


@pytest.mark.timeout(120)
@FUZZ
@given(text=st.text(max_size=3000))
def test_any_text_is_normalised_or_refused(text):
    decode_or_refuse("text", text)
    decode_or_refuse("text", text.encode("utf-8", "surrogatepass"))


# ----------------------------------------------------------------------------- manifests
HOSTILE_PATHS = [
    "img.png", "snd.wav", "missing.png", "../outside.png", "sub/../../outside.png", "/etc/passwd.png",
    "C:\\Windows\\x.png", "..\\outside.png", "escape.png", "escape_dir/outside.png", "loop.png",
    "dir.png", "x\x00.png", "~/.ssh/id.png", "a" * 300 + ".png", "img.PNG", "./img.png", "snd.png", "img.wav",
    "%2e%2e/outside.png", "ｉｍｇ.png", "",
]  # fmt: skip


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> Path:
    """A dataset folder with real files, links leading out (file, folder, loop) and a folder named like a file."""
    base = tmp_path_factory.mktemp("fuzz-manifest")
    outside = base / "outside"
    outside.mkdir()
    files = seed_files()
    (outside / "outside.png").write_bytes(files["png"])
    (base / "outside.png").write_bytes(files["png"])
    root = base / "ds"
    root.mkdir()
    (root / "img.png").write_bytes(files["png"])
    (root / "snd.wav").write_bytes(files["wav"])
    (root / "snd.png").write_bytes(files["wav"])
    (root / "img.wav").write_bytes(files["png"])
    (root / "escape.png").symlink_to(outside / "outside.png")
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    (root / "loop.png").symlink_to(root / "loop.png")
    (root / "dir.png").mkdir()
    return root


cells = st.one_of(st.sampled_from(HOSTILE_PATHS), st.text(max_size=40), st.none())
rows = st.fixed_dictionaries(
    {"label": st.one_of(st.sampled_from(["a", "b"]), st.text(max_size=5), st.none())},
    optional={
        "image": cells,
        "audio": cells,
        "text": st.one_of(st.text(max_size=60), st.none()),
        "split": st.one_of(st.sampled_from(["train", "val", "test", "TEST", "bogus"]), st.none()),
        "id": st.one_of(st.sampled_from(["s1", "s2"]), st.text(max_size=5)),
        "extra": st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.booleans(), st.text(max_size=8)),
    },
)


def render(manifest_rows: list[dict], kind: str) -> bytes:
    if kind == "jsonl":
        return "\n".join(json.dumps(row) for row in manifest_rows).encode("utf-8", "surrogatepass")
    columns = sorted({key for row in manifest_rows for key in row}) or ["label"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in manifest_rows:
        writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in columns])
    return buffer.getvalue().encode("utf-8", "surrogatepass")


@pytest.mark.timeout(300)
@settings(
    max_examples=150,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(manifest_rows=st.lists(rows, max_size=12), kind=st.sampled_from(["csv", "jsonl"]))
def test_random_manifests_only_report_issues_and_never_escape(hostile_folder, manifest_rows, kind):
    manifest = hostile_folder / f"manifest.{kind}"
    manifest.write_bytes(render(manifest_rows, kind))
    try:
        report = validate_dataset(hostile_folder, LIMITS)
        assert report.n_rows >= 0 and all(issue.reason for issue in report.issues)
        try:
            dataset = load_dataset(hostile_folder, skip_invalid=True, limits=LIMITS)
        except DatasetError:
            return
        root = hostile_folder.resolve()
        for record in dataset.records:
            for path in (record.image, record.audio):
                if path is not None:
                    assert path.resolve().is_relative_to(root), path
                    assert path.is_file() and not os.path.islink(path)
                    assert path.name not in ("escape.png", "loop.png")
    finally:
        manifest.unlink()


def test_hostile_folder_paths_are_refused_with_reasons(hostile_folder):
    """The fixture's escapes, each refused with its own reason, next to rows that load."""
    cells = [
        "img.png",
        "./img.png",
        "escape.png",
        "escape_dir/outside.png",
        "loop.png",
        "..\\outside.png",
        "x\u0000.png",
        "dir.png",
        "a" * 300 + ".png",
    ]
    manifest = hostile_folder / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps({"label": "a", "image": cell}) for cell in cells))
    try:
        report = validate_dataset(hostile_folder)
        reasons = {issue.row: issue.reason for issue in report.issues}
        assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9]
        assert "link that leads outside" in reasons[3] and "link that leads outside" in reasons[4]
        assert "symlink loop" in reasons[5]
        assert "leaves the dataset folder" in reasons[6]
        assert "NUL character" in reasons[7]
        assert "Not a regular file" in reasons[8]
        assert "File name too long" in reasons[9]
        dataset = load_dataset(hostile_folder, skip_invalid=True)
        assert [record.image for record in dataset.records] == [hostile_folder.resolve() / "img.png"] * 2
    finally:
        manifest.unlink()
