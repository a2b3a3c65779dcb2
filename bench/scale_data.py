"""Synthetic datasets of any size for the scale benchmark: PNG images, short WAVs, texts,
a metadata column and a few invalid rows, in the format users' datasets take.

Generation is vectorised (one array of images or waveforms per chunk, WAV headers
written by hand) and spread over every core; a finished dataset is kept on disk under
``<root>/n<N>-seed<seed>-v<RECIPE>`` and reused, so a benchmark pays for it once.

The classes are learnable but not trivial: each class has a colour and a stripe
direction (image), a pitch (audio) and a few words (text), all three drawn with noise,
and some rows lack a modality.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

RECIPE = 1
"""Bump when the generated content changes: the cache folder is keyed by it."""

CLASSES = 20
IMAGE_SIDE = 24
SAMPLE_RATE = 16_000
AUDIO_SECONDS = 0.5
CHUNK = 2_000
MISSING_MODALITY = {"image": 0.1, "audio": 0.1, "text": 0.15}
"""Share of rows lacking each modality (independently, so some lack two)."""
NO_MODALITY_SHARE = 45 / 30_000
"""Rows with no modality at all (invalid), the share of the issue's 30,000-row dataset."""
BROKEN_FILE_SHARE = 10 / 30_000
"""Rows whose image is missing or not an image (invalid)."""

_WORDS = [f"w{k:02d}{s}" for k in range(CLASSES) for s in ("a", "b", "c")]
_FILLER = ["the", "a", "sample", "of", "with", "and", "seen", "heard", "here", "maybe"]


def dataset_dir(root: Path, n: int, seed: int, invalid: bool = True) -> Path:
    return Path(root) / f"n{n}-seed{seed}-v{RECIPE}{'' if invalid else '-valid'}"


def synthesize(root: str | Path, n: int, seed: int = 0, workers: int | None = None, invalid: bool = True) -> Path:
    """The dataset of ``n`` rows for ``seed`` under ``root`` (built now unless already complete);
    without ``invalid``, no row is broken."""
    folder = dataset_dir(Path(root), n, seed, invalid)
    done = folder / "complete.json"
    if done.is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted build
    (folder / "images").mkdir(parents=True)
    (folder / "audio").mkdir()
    starts = list(range(0, n, CHUNK))
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=min(workers, len(starts))) as pool:
        parts = list(pool.map(_write_chunk, [(folder, seed, s, min(s + CHUNK, n), invalid) for s in starts]))
    rows = [row for part in parts for row in part]
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        columns = ["id", "label", "image", "audio", "text", "source"]
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    invalid = sum(row["_invalid"] for row in rows)
    done.write_text(json.dumps({"rows": n, "seed": seed, "recipe": RECIPE, "invalid_rows": invalid}))
    return folder


def _write_chunk(job: tuple[Path, int, int, int, bool]) -> list[dict[str, str]]:
    """Rows ``start..stop``: their files written, their manifest rows returned."""
    folder, seed, start, stop, invalid = job
    rng = np.random.default_rng([seed, start])
    count = stop - start
    labels = rng.integers(0, CLASSES, count)
    images = _images(labels, rng)
    waves = _waves(labels, rng)
    rows = []
    for i in range(count):
        row_id = start + i
        name = f"{row_id:07d}"
        shard = f"{row_id // 1000:04d}"
        has = {m: rng.random() >= share for m, share in MISSING_MODALITY.items()}
        broken = False
        if not any(has.values()) and not invalid:
            has["text"] = True
        if invalid and rng.random() < NO_MODALITY_SHARE:
            has = dict.fromkeys(has, False)
        elif invalid and has["image"] and rng.random() < BROKEN_FILE_SHARE:
            broken = True
        row = {"id": f"s{name}", "label": f"class{labels[i]:02d}", "image": "", "audio": "", "text": "",
               "source": ("camera", "scanner", "phone")[int(rng.integers(0, 3))]}  # fmt: skip
        if has["image"]:
            path = folder / "images" / shard / f"{name}.png"
            path.parent.mkdir(exist_ok=True)
            if not broken:
                path.write_bytes(_png(images[i]))
            elif row_id % 2:
                path.write_bytes(b"this is not a PNG")
            # else: the file is simply missing
            row["image"] = f"images/{shard}/{name}.png"
        if has["audio"]:
            path = folder / "audio" / shard / f"{name}.wav"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(_wav(waves[i]))
            row["audio"] = f"audio/{shard}/{name}.wav"
        if has["text"]:
            row["text"] = _text(int(labels[i]), rng)
        row["_invalid"] = broken or not any(has.values())  # counted, not written
        rows.append(row)
    return rows


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``uint8 [n, side, side, 3]``: a class colour, class stripes, noise."""
    n = len(labels)
    side = IMAGE_SIDE
    hues = np.stack([(labels * 37) % 256, (labels * 91 + 40) % 256, (labels * 53 + 120) % 256], axis=1)
    yy, xx = np.mgrid[0:side, 0:side]
    angle = (labels % 5) * (np.pi / 5)
    phase = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    stripes = (np.sin(phase * (1 + labels[:, None, None] // 5) * 0.6) > 0).astype(np.float32)
    base = hues[:, None, None, :] * (0.5 + 0.5 * stripes[..., None])
    noisy = base + rng.normal(0, 40, size=(n, side, side, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _waves(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``int16 [n, samples]``: a class pitch with a random phase and level, plus noise."""
    n = len(labels)
    t = np.arange(int(SAMPLE_RATE * AUDIO_SECONDS)) / SAMPLE_RATE
    freq = 220.0 * 2 ** (labels / 8.0)
    level = rng.uniform(0.1, 0.5, size=n)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    wave = level[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None, :] + phase[:, None])
    wave += rng.normal(0, 0.05, size=wave.shape)
    return (np.clip(wave, -1, 1) * 32767).astype("<i2")


def _wav(samples: np.ndarray) -> bytes:
    """A mono 16-bit PCM WAV file (header written by hand: much faster than a library per file)."""
    data = samples.tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16, b"data", len(data),
    )  # fmt: skip
    return header + data


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _text(label: int, rng: np.random.Generator) -> str:
    own = [w for w in _WORDS if w.startswith(f"w{label:02d}")]
    words = list(rng.choice(_FILLER, size=int(rng.integers(3, 7))))
    words += list(rng.choice(own, size=int(rng.integers(1, 3))))
    if rng.random() < 0.3:  # a misleading word from another class
        words.append(str(rng.choice(_WORDS)))
    rng.shuffle(words)
    return " ".join(words)
