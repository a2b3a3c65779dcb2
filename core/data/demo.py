"""The embedded demo dataset "multimodal digits", built offline and deterministically.

Each sample is one digit 0-9 seen three ways: a real handwritten digit
(``sklearn.datasets.load_digits``, upscaled to 32x32), a digit word spoken by one of
the committed espeak-ng prototypes in ``demo_voices/`` (speed, gain, placement and
noise drawn per sample), and a text clue. Samples are drawn by design from the
classic kinds of multimodal information, recorded per sample in ``information``:

- ``redundant``: every present modality alone gives the answer;
- ``unique-<m>``: only modality ``m`` gives it, the others are missing, corrupted or
  (text) a partial clue;
- ``synergy``: the picture and the voice show two different digits and the text says
  which one counts ("trust the voice", "the written digit"); no modality alone
  determines the label, the three together do.

So every lone modality stays well below the fused models, and the synergy rows tell
apart the fusion strategies that can model interactions between modalities from late
fusion, whose weighted sum of per-modality logits cannot. Ground-truth columns
(``image_state``, ``image_label``, ``audio_snr_db``...) let explanations be checked
against what was really done to each sample. ``label:pitch`` (high/low voice) is a
second target that only the audio knows.

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

DEMO_VERSION = 4
"""Bump when the build changes, so cached demo folders are rebuilt."""

VOICES_DIR = Path(__file__).resolve().parent / "demo_voices"
IMAGE_SIZE = 32
CLIP_SECONDS = 1.0
N_SOURCE_IMAGES = 1797
"""Size of ``load_digits``; ``build_demo(n_source=...)`` takes a stratified subset of it."""

SOURCE_SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}
COPIES_PER_SOURCE = {"train": 3, "val": 1, "test": 2}
"""Each copy has its own audio, text and corruption draws. Three in train: the fusion heads
learn the synergy interaction from ~1100 rows (with two, the best strategy lost ~2 points);
two in test, so the synergy slice (~250 rows) gives bootstrap intervals narrow enough to
tell strategies apart."""

# Kinds of multimodal information and their probabilities. Synergy is the largest share:
# the fusion heads must learn a three-way interaction from it, and its test slice must be
# large. Each lone modality is then right on well under 85% of samples, while the fused
# models can be right on nearly all of them.
INFORMATION = {"redundant": 0.2, "unique-image": 0.15, "unique-audio": 0.15, "unique-text": 0.15, "synergy": 0.35}
REDUNDANT_TEXT_STATES = {"exact": 0.7, "missing": 0.3}
UNIQUE_TEXT_STATES = {"partial": 0.5, "missing": 0.5}  # in unique-image / unique-audio rows
P_CORRUPTED_WHEN_BAD = 0.7  # otherwise the modality is missing altogether
CLEAN_SNR_DB = (10.0, 30.0)
CORRUPTED_SNR_DB = (-28.0, -20.0)  # white noise, deep enough that the audio CNN names the word about as often as chance
SPEED_RANGE = (0.9, 1.1)
GAIN_RANGE = (0.3, 1.0)
P_MILD_IMAGE_NOISE = 0.5
P_OCCLUSION = 0.6  # of corrupted images; the rest drown in noise
OCCLUDED_INK = (0.7, 0.9)  # enough that a corrupted image is often misread, not just harder

VOICE_PITCH = {"en": 50, "enus": 45, "scot": 55, "carib": 40, "f3": 70, "m3": 30, "usf2": 80, "klatt": 60}
"""espeak-ng pitch (0-99) of each voice variant, as set in ``scripts/make_demo_voices.sh``."""
HIGH_PITCH = 55
"""``label:pitch`` is ``high`` from this pitch up: four variants each way, so the split is even."""

COLUMNS = [
    "id", "label", "label:pitch", "split", "image", "audio", "text",
    "image_state", "audio_state", "text_state", "information", "image_corruption",
    "audio_snr_db", "voice", "image_label", "audio_label", "source_index", "clue_candidates",
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


ROUTING_CLUES = {
    "image": ("trust the picture", "the picture is right", "the written digit", "what you see"),
    "audio": ("trust the voice", "the voice is right", "the spoken digit", "what you hear"),
}
"""Synergy clues: which modality's digit is the label. Alone they leave every digit possible."""


def make_routing_clue(modality: str, rng: np.random.Generator) -> tuple[str, list[int]]:
    """A clue saying that the digit ``modality`` shows is the label, and the digits it leaves possible (all)."""
    phrasings = ROUTING_CLUES[modality]
    return phrasings[rng.integers(len(phrasings))], list(range(10))


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


def _load_voices() -> dict[str, np.ndarray]:
    """Every prototype by stem (``<digit>_<variant>``); all ten digits of all variants must be there."""
    voices = {path.stem: decode_audio(read_file(path)).astype(np.float64) for path in sorted(VOICES_DIR.glob("*.wav"))}
    missing = [f"{d}_{v}" for d in range(10) for v in VOICE_PITCH if f"{d}_{v}" not in voices]
    if missing:
        listed = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise FileNotFoundError(
            f"Voice prototypes ({listed}) are missing in {VOICES_DIR}; run scripts/make_demo_voices.sh."
        )
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


@dataclass(frozen=True)
class _Plan:
    """What one sample shows: the label, each modality's state and digit, and the clue."""

    information: str
    label: int
    states: dict[str, str]  # image and audio: clean / corrupted / missing
    digits: dict[str, int]  # image and audio: the digit shown (under the corruption, if any)
    text_state: str
    text: str
    candidates: list[int]


def _bad_state(rng: np.random.Generator) -> str:
    return "corrupted" if rng.random() < P_CORRUPTED_WHEN_BAD else "missing"


def _plan(information: str, digit: int, rng: np.random.Generator) -> _Plan:
    """A sample of kind ``information`` whose handwritten image shows ``digit``."""
    if information == "synergy":
        return _plan_synergy(digit, rng)
    states = {"image": "clean", "audio": "clean"}
    if information == "redundant":
        text_state = _draw(REDUNDANT_TEXT_STATES, rng)
    elif information == "unique-text":
        states = {m: _bad_state(rng) for m in states}
        text_state = "exact"
    else:
        states["audio" if information == "unique-image" else "image"] = _bad_state(rng)
        text_state = _draw(UNIQUE_TEXT_STATES, rng)
    text, candidates = make_clue(digit, text_state, rng)
    return _Plan(information, digit, states, {"image": digit, "audio": digit}, text_state, text, candidates)


def _plan_synergy(digit: int, rng: np.random.Generator) -> _Plan:
    """The picture shows ``digit``, the voice another digit, both clean; the clue says which counts."""
    pointed = "image" if rng.random() < 0.5 else "audio"
    spoken = int((digit + rng.integers(1, 10)) % 10)  # any digit but the written one, uniformly
    label = digit if pointed == "image" else spoken
    text, candidates = make_routing_clue(pointed, rng)
    states = {"image": "clean", "audio": "clean"}
    return _Plan("synergy", label, states, {"image": digit, "audio": spoken}, "routing", text, candidates)


def _build_row(
    sample_id: str,
    split: str,
    source_index: int,
    source: np.ndarray,
    digit: int,
    voices: dict[str, np.ndarray],
    rng: np.random.Generator,
    out_dir: Path,
) -> dict[str, str]:
    plan = _plan(_draw(INFORMATION, rng), digit, rng)
    image, corruption = _render_image(source, plan.states["image"], rng)
    image_cell = ""
    if image is not None:
        image_cell = f"images/{sample_id}.png"
        (out_dir / image_cell).write_bytes(encode_png(image))

    audio_cell = snr_cell = voice = pitch = ""
    if plan.states["audio"] != "missing":
        # The variant is drawn on its own, so the voice (and its pitch) says nothing about the digit.
        variant = list(VOICE_PITCH)[int(rng.integers(len(VOICE_PITCH)))]
        voice = f"{plan.digits['audio']}_{variant}"
        pitch = "high" if VOICE_PITCH[variant] >= HIGH_PITCH else "low"
        snr = rng.uniform(*(CLEAN_SNR_DB if plan.states["audio"] == "clean" else CORRUPTED_SNR_DB))
        audio_cell, snr_cell = f"audio/{sample_id}.wav", f"{snr:.1f}"
        (out_dir / audio_cell).write_bytes(encode_wav(_render_audio(voices[voice], snr, rng).astype(np.float32)))

    return {
        "id": sample_id,
        "label": str(plan.label),
        "label:pitch": pitch,
        "split": split,
        "image": image_cell,
        "audio": audio_cell,
        "text": plan.text,
        "image_state": plan.states["image"],
        "audio_state": plan.states["audio"],
        "text_state": plan.text_state,
        "information": plan.information,
        "image_corruption": corruption,
        "audio_snr_db": snr_cell,
        "voice": voice,
        "image_label": str(plan.digits["image"]) if image_cell else "",
        "audio_label": str(plan.digits["audio"]) if audio_cell else "",
        "source_index": str(source_index),
        "clue_candidates": " ".join(map(str, plan.candidates)) if plan.text_state != "missing" else "",
    }


README = """\
Multimodal digits: a demo dataset built by core.data.demo.build_demo (seed {seed}).

Each row is one digit 0-9 given as a 32x32 handwritten image (sklearn load_digits),
a 1 s spoken word (espeak-ng prototypes with random speed, gain, placement and noise)
and a text clue. Rows are drawn from the kinds of multimodal information (column
information): redundant (every present modality alone gives the answer), unique-image,
unique-audio, unique-text (only that modality does; the others are missing, corrupted
or a partial clue) and synergy (the picture and the voice show two different digits and
the text says which one counts: only all three together give the answer). An empty
cell means the modality is missing.

Columns
  id               sample id; also the file name of its image and audio
  label            the target, "0".."9"
  label:pitch      a second target: high / low, the pitch of the voice (espeak-ng pitch
                   55 or more is high); empty when there is no audio
  split            train / val / test (split by source image: none is shared)
  image            path of the PNG, relative to this folder
  audio            path of the 16 kHz mono WAV, relative to this folder
  text             the clue, e.g. "the digit after six", "a prime number", "trust the voice"
  image_state      clean / corrupted / missing
  audio_state      clean / corrupted / missing
  text_state       exact (names the label) / partial (2-5 digits possible) / routing (says
                   whose digit is the label: the image's or the audio's) / missing
  information      redundant / unique-image / unique-audio / unique-text / synergy
  image_corruption none / occlusion (a noise band hiding 70-90% of the ink) / noise
  audio_snr_db     signal-to-noise ratio of the audio in dB (clean 10..30, corrupted -28..-20)
  voice            the voice prototype used (core/data/demo_voices/<voice>.wav): <digit>_<variant>
  image_label      the digit the image shows (the label except in synergy rows); empty if missing
  audio_label      the digit the voice says (the label except in synergy rows); empty if missing
  source_index     index of the handwritten digit in sklearn's load_digits
  clue_candidates  the digits the clue alone leaves possible, space separated
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
        small test builds. The full 1797 give about 4300 samples.

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
    """Tallies recorded in ``demo.json``: samples per split, kind of information and state of each modality."""
    counts: dict[str, dict[str, int]] = {}
    for column in ("split", "information", "image_state", "audio_state", "text_state", "image_corruption"):
        values = [row[column] for row in rows]
        counts[column] = {value: values.count(value) for value in sorted(set(values))}
    return counts
