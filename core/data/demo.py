"""The embedded demo dataset "multimodal digits", built offline and deterministically.

Each sample is one digit 0-9 seen three ways: a real handwritten digit
(``sklearn.datasets.load_digits``, upscaled to 32x32), the digit word spoken by one
of the committed espeak-ng prototypes in ``demo_voices/`` (speed, gain, placement
and noise drawn per sample), and a text clue that pins the digit down fully,
partly or not at all. A per-sample corruption pattern damages the image or the
audio (rarely both, then the clue is exact), so no modality alone suffices and
fusing them does. Ground-truth columns (``image_state``, ``audio_snr_db``...) let
explanations be checked against what was really done to each sample.

The voices are regenerated with ``scripts/make_demo_voices.sh``; building needs no espeak.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.io import SAMPLE_RATE, decode_audio, encode_png, encode_wav, read_file

DEMO_VERSION = 2
"""Bump when the build changes, so cached demo folders are rebuilt."""

VOICES_DIR = Path(__file__).resolve().parent / "demo_voices"
IMAGE_SIZE = 32
CLIP_SECONDS = 1.0
N_SOURCE_IMAGES = 1797
"""Size of ``load_digits``; ``build_demo(n_source=...)`` takes a stratified subset of it."""

SOURCE_SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}
COPIES_PER_SOURCE = {"train": 2, "val": 1, "test": 1}
"""Train images are used twice, with independent audio, text and corruption draws."""

# Corruption patterns and their probabilities: each lone modality is damaged often
# enough to stay below ~85% accuracy, while some other modality is clean for ~95% of
# samples, and when both perceptual ones are damaged the text gives the answer.
PATTERNS = {"image_bad": 0.35, "audio_bad": 0.35, "both_clean": 0.25, "both_bad": 0.05}
P_CORRUPTED_WHEN_BAD = 0.7  # otherwise the modality is missing altogether
TEXT_STATES = {"exact": 0.2, "partial": 0.5, "missing": 0.3}
CLEAN_SNR_DB = (10.0, 30.0)
CORRUPTED_SNR_DB = (-22.0, -14.0)  # white noise: speech bands keep more SNR than this
SPEED_RANGE = (0.9, 1.1)
GAIN_RANGE = (0.3, 1.0)
P_MILD_IMAGE_NOISE = 0.5
P_OCCLUSION = 0.6  # of corrupted images; the rest drown in noise
OCCLUDED_INK = (0.6, 0.8)

COLUMNS = [
    "id", "label", "split", "image", "audio", "text",
    "image_state", "audio_state", "text_state", "image_corruption",
    "audio_snr_db", "voice", "source_index", "clue_candidates",
]  # fmt: skip

WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
]  # fmt: skip


# --------------------------------------------------------------------------- text clues


@dataclass(frozen=True)
class PartialClue:
    """A clue true of 2-5 digits, with interchangeable phrasings."""

    candidates: frozenset[int]
    phrasings: tuple[str, ...]


def _partial_clues() -> list[PartialClue]:
    def clue(candidates: set[int] | range, *phrasings: str) -> PartialClue:
        return PartialClue(frozenset(candidates), phrasings)

    clues = [
        clue(
            {1, 3, 5, 7, 9}, "an odd number", "an odd digit", "a number that is odd", "the digit after an even number"
        ),
        clue(
            {0, 2, 4, 6, 8},
            "an even number",
            "an even digit",
            "a number that is even",
            "the digit before an odd number",
        ),
        clue({1, 3}, "an odd number below five", "an odd digit smaller than four"),
        clue({5, 7, 9}, "an odd number above four", "an odd digit bigger than four"),
        clue({0, 2, 4}, "an even number below five", "an even digit smaller than five"),
        clue({6, 8}, "an even number above five", "an even digit bigger than five"),
        clue({2, 4, 6, 8}, "the digit after an odd number", "an even number that is not zero"),
        clue({0, 3, 6, 9}, "a multiple of three", "a number divisible by three"),
        clue({3, 6, 9}, "a nonzero multiple of three", "three, six or nine"),
        clue({0, 4, 8}, "a multiple of four", "a number divisible by four"),
        clue({2, 3, 5, 7}, "a prime number", "a prime digit"),
        clue({0, 1, 4, 9}, "a perfect square", "the square of a whole number"),
        clue({1, 2, 6}, "a number whose name has three letters", "a digit spelled with three letters"),
        clue({0, 4, 5, 9}, "a number whose name has four letters", "a digit spelled with four letters"),
        clue({3, 7, 8}, "a number whose name has five letters", "a digit spelled with five letters"),
    ]
    for bound in range(4, 8):  # above 4..7: 5 down to 2 candidates
        word = WORDS[bound]
        clues.append(
            clue(range(bound + 1, 10), f"a number greater than {word}", f"a digit above {word}", f"bigger than {word}")
        )
    for bound in range(2, 6):  # below 2..5: 2 up to 5 candidates
        word = WORDS[bound]
        clues.append(clue(range(bound), f"a number below {word}", f"a digit less than {word}", f"smaller than {word}"))
    for low in range(0, 7):  # strictly between low and low+4: 3 candidates
        high = low + 4
        clues.append(
            clue(
                range(low + 1, high),
                f"a number between {WORDS[low]} and {WORDS[high]}",
                f"strictly between {WORDS[low]} and {WORDS[high]}",
            )
        )
    return clues


PARTIAL_CLUES = _partial_clues()


def _exact_phrasings(digit: int) -> list[str]:
    word = WORDS[digit]
    phrasings = [word, f"the digit {word}", f"the number {word}", f"it is {word}"]
    if digit >= 1:
        phrasings += [f"the digit after {WORDS[digit - 1]}", f"one more than {WORDS[digit - 1]}"]
    if digit <= 8:
        phrasings += [f"the digit before {WORDS[digit + 1]}"]
    phrasings += [f"one less than {WORDS[digit + 1]}"]
    if digit >= 2:
        phrasings += [f"two more than {WORDS[digit - 2]}"]
    if digit <= 7:
        phrasings += [f"two less than {WORDS[digit + 2]}"]
    if digit >= 1:
        phrasings += [f"half of {WORDS[2 * digit]}"]
    if digit % 2 == 0 and digit > 0:
        phrasings += [f"twice {WORDS[digit // 2]}"]
    return phrasings


def make_clue(digit: int, state: str, rng: np.random.Generator) -> tuple[str, list[int]]:
    """A text clue for ``digit`` and the digits it leaves possible (empty text when missing)."""
    if state == "missing":
        return "", list(range(10))
    if state == "exact":
        phrasings = _exact_phrasings(digit)
        return phrasings[rng.integers(len(phrasings))], [digit]
    valid = [c for c in PARTIAL_CLUES if digit in c.candidates]
    chosen = valid[rng.integers(len(valid))]
    return chosen.phrasings[rng.integers(len(chosen.phrasings))], sorted(chosen.candidates)


# --------------------------------------------------------------------------- images


def _upscale(digit_8x8: np.ndarray) -> np.ndarray:
    from PIL import Image

    small = Image.fromarray(np.round(digit_8x8 * (255 / 16)).astype(np.uint8))
    return np.asarray(small.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC), dtype=np.float64)


def _occlude(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cover a band (rows or columns) hiding 60-80% of the digit's ink with noise."""
    ink = image / max(image.sum(), 1e-9)
    axis = int(rng.integers(2))
    profile = np.cumsum(np.concatenate([[0.0], ink.sum(axis=axis)]))
    target = rng.uniform(*OCCLUDED_INK)
    # Bands [start, stop) whose ink share is closest to the target, one per start.
    starts = np.arange(IMAGE_SIZE)
    stops = np.searchsorted(profile, profile[starts] + target, side="left").clip(max=IMAGE_SIZE)
    feasible = starts[profile[stops] - profile[starts] >= target - 0.05]
    start = int(feasible[rng.integers(len(feasible))]) if len(feasible) else 0
    stop = int(stops[start]) if len(feasible) else IMAGE_SIZE
    occluded = image.copy()
    band = (slice(start, stop), slice(None)) if axis == 1 else (slice(None), slice(start, stop))
    occluded[band] = rng.uniform(0, 255, size=occluded[band].shape)
    return occluded


def _render_image(source: np.ndarray, state: str, rng: np.random.Generator) -> tuple[np.ndarray | None, str]:
    """The image of one sample and the corruption applied (none, occlusion, noise)."""
    if state == "missing":
        return None, "none"
    image = _upscale(source)
    corruption = "none"
    if state == "clean":
        if rng.random() < P_MILD_IMAGE_NOISE:
            image = image + rng.normal(0, rng.uniform(5, 20), image.shape)
    elif rng.random() < P_OCCLUSION:
        corruption = "occlusion"
        image = _occlude(image, rng)
    else:
        corruption = "noise"
        image = image * rng.uniform(0.2, 0.4) + rng.normal(0, rng.uniform(110, 150), image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), corruption


# --------------------------------------------------------------------------- audio


def _load_voices() -> dict[int, list[tuple[str, np.ndarray]]]:
    voices: dict[int, list[tuple[str, np.ndarray]]] = {d: [] for d in range(10)}
    for path in sorted(VOICES_DIR.glob("*.wav")):
        voices[int(path.stem.split("_")[0])].append((path.stem, decode_audio(read_file(path)).astype(np.float64)))
    if any(not prototypes for prototypes in voices.values()):
        raise FileNotFoundError(f"Voice prototypes are missing in {VOICES_DIR}; run scripts/make_demo_voices.sh.")
    return voices


def _voices_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(VOICES_DIR.glob("*.wav")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _render_audio(prototype: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A 1 s clip: the prototype sped up or down, scaled, placed at random, plus white noise at ``snr_db``."""
    clip_length = int(CLIP_SECONDS * SAMPLE_RATE)
    speed = rng.uniform(*SPEED_RANGE)
    length = min(int(len(prototype) / speed), clip_length)
    speech = np.interp(np.arange(length) * speed, np.arange(len(prototype)), prototype) * rng.uniform(*GAIN_RANGE)
    offset = int(rng.integers(clip_length - length + 1))
    clip = np.zeros(clip_length)
    clip[offset : offset + length] = speech
    # SNR is measured against the speech segment, so the silent padding does not inflate it.
    noise_power = np.mean(speech**2) / 10 ** (snr_db / 10)
    clip += rng.normal(0, np.sqrt(noise_power), clip_length)
    peak = np.abs(clip).max()
    return clip * (0.99 / peak) if peak > 0.99 else clip


# --------------------------------------------------------------------------- build


def _split_sources(labels: np.ndarray, n_source: int, seed: int) -> dict[str, np.ndarray]:
    """Stratified split of source images, so no handwritten digit appears in two splits."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    if n_source < len(labels):
        indices, _ = train_test_split(indices, train_size=n_source, stratify=labels, random_state=seed)
    train, holdout = train_test_split(
        indices, train_size=SOURCE_SPLIT["train"], stratify=labels[indices], random_state=seed
    )
    val, test = train_test_split(holdout, test_size=0.5, stratify=labels[holdout], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _draw(options: dict[str, float], rng: np.random.Generator) -> str:
    names = list(options)
    return names[int(rng.choice(len(names), p=list(options.values())))]


def _build_row(
    sample_id: str,
    split: str,
    source_index: int,
    source: np.ndarray,
    digit: int,
    voices: dict[int, list[tuple[str, np.ndarray]]],
    rng: np.random.Generator,
    out_dir: Path,
) -> dict[str, str]:
    pattern = _draw(PATTERNS, rng)
    bad = {"image_bad": {"image"}, "audio_bad": {"audio"}, "both_clean": set(), "both_bad": {"image", "audio"}}[pattern]
    states = {
        m: ("corrupted" if rng.random() < P_CORRUPTED_WHEN_BAD else "missing") if m in bad else "clean"
        for m in ("image", "audio")
    }
    text_state = "exact" if pattern == "both_bad" else _draw(TEXT_STATES, rng)
    text, candidates = make_clue(digit, text_state, rng)

    image, corruption = _render_image(source, states["image"], rng)
    image_cell = ""
    if image is not None:
        image_cell = f"images/{sample_id}.png"
        (out_dir / image_cell).write_bytes(encode_png(image))

    audio_cell = snr_cell = voice = ""
    if states["audio"] != "missing":
        voice, prototype = voices[digit][int(rng.integers(len(voices[digit])))]
        snr = rng.uniform(*(CLEAN_SNR_DB if states["audio"] == "clean" else CORRUPTED_SNR_DB))
        audio_cell, snr_cell = f"audio/{sample_id}.wav", f"{snr:.1f}"
        (out_dir / audio_cell).write_bytes(encode_wav(_render_audio(prototype, snr, rng).astype(np.float32)))

    return {
        "id": sample_id,
        "label": str(digit),
        "split": split,
        "image": image_cell,
        "audio": audio_cell,
        "text": text,
        "image_state": states["image"],
        "audio_state": states["audio"],
        "text_state": text_state,
        "image_corruption": corruption,
        "audio_snr_db": snr_cell,
        "voice": voice,
        "source_index": str(source_index),
        "clue_candidates": " ".join(map(str, candidates)) if text_state != "missing" else "",
    }


README = """\
Multimodal digits: a demo dataset built by core.data.demo.build_demo (seed {seed}).

Each row is one digit 0-9 given as a 32x32 handwritten image (sklearn load_digits),
a 1 s spoken word (espeak-ng prototypes with random speed, gain, placement and noise)
and a text clue. Some modalities are corrupted or missing on purpose: no single one
suffices, fusing them does. An empty cell means the modality is missing.

Columns
  id               sample id; also the file name of its image and audio
  label            the digit, "0".."9"
  split            train / val / test (split by source image: none is shared)
  image            path of the PNG, relative to this folder
  audio            path of the 16 kHz mono WAV, relative to this folder
  text             the clue, e.g. "the digit after six" or "a prime number"
  image_state      clean / corrupted / missing
  audio_state      clean / corrupted / missing
  text_state       exact (names the digit) / partial (2-5 digits possible) / missing
  image_corruption none / occlusion (a noise band hiding 60-80% of the ink) / noise
  audio_snr_db     signal-to-noise ratio of the audio in dB (clean 10..30, corrupted -22..-14)
  voice            the voice prototype used (core/data/demo_voices/<voice>.wav)
  source_index     index of the handwritten digit in sklearn's load_digits
  clue_candidates  the digits the clue leaves possible, space separated
"""


def demo_is_built(out_dir: str | Path, seed: int = 0, n_source: int = N_SOURCE_IMAGES) -> bool:
    """Whether ``out_dir`` holds a complete demo of this version, seed, size and voice set."""
    out_dir = Path(out_dir)
    try:
        info = json.loads((out_dir / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    expected = {"version": DEMO_VERSION, "seed": seed, "n_source": n_source, "voices": _voices_digest()}
    return (out_dir / "manifest.csv").is_file() and all(info.get(k) == v for k, v in expected.items())


def build_demo(
    out_dir: str | Path,
    *,
    seed: int = 0,
    progress: bool = True,
    n_source: int = N_SOURCE_IMAGES,
) -> Path:
    """Build the "multimodal digits" demo dataset into ``out_dir`` (skipped when already built).

    Parameters
    ----------
    out_dir : str or Path
        Destination folder. An existing demo there is replaced; a non-empty folder
        that is not a demo is refused rather than overwritten.
    seed : int
        Every random draw derives from it: the same seed gives byte-identical files.
    progress : bool
        Show a tqdm progress bar.
    n_source : int
        Number of ``load_digits`` images used (a stratified subset; at least 50), for
        small test builds. The full 1797 give about 2900 samples.

    Returns
    -------
    Path
        The dataset folder, ready for :func:`core.data.load_dataset`.
    """
    from sklearn.datasets import load_digits
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    if demo_is_built(out_dir, seed, n_source):
        return out_dir
    if not 50 <= n_source <= N_SOURCE_IMAGES:
        raise ValueError(f"n_source must be between 50 and {N_SOURCE_IMAGES}, got {n_source}.")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "demo.json").is_file():
        raise FileExistsError(f"{out_dir} is not empty and holds no demo; choose another folder.")

    digits = load_digits()
    voices = _load_voices()
    sources = _split_sources(digits.target, n_source, seed)
    jobs = [
        (split, int(index), copy)
        for split in ("train", "val", "test")
        for index in sources[split]
        for copy in range(COPIES_PER_SOURCE[split])
    ]

    # Built beside the destination and swapped in at the end, so an interrupted build never
    # leaves a half-written folder that looks complete.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        (staging / "images").mkdir()
        (staging / "audio").mkdir()
        rows = []
        for number, (split, index, copy) in enumerate(
            tqdm(jobs, desc="Building demo", unit="sample", disable=not progress)
        ):
            # One generator per sample: its draws do not depend on the samples built before it.
            rng = np.random.default_rng([seed, index, copy])
            digit = int(digits.target[index])
            rows.append(_build_row(f"d{number:04d}", split, index, digits.images[index], digit, voices, rng, staging))
        with open(staging / "manifest.csv", "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        (staging / "README.txt").write_text(README.format(seed=seed), encoding="utf-8")
        info = {
            "version": DEMO_VERSION,
            "seed": seed,
            "n_source": n_source,
            "voices": _voices_digest(),
            "counts": _counts(rows),
        }
        (staging / "demo.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _counts(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    """Tallies recorded in ``demo.json``: samples per split and per state of each modality."""
    counts: dict[str, dict[str, int]] = {}
    for column in ("split", "image_state", "audio_state", "text_state", "image_corruption"):
        values = [row[column] for row in rows]
        counts[column] = {value: values.count(value) for value in sorted(set(values))}
    return counts
