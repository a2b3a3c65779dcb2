"""Robustness: metrics with modalities missing, under seeded corruptions, and with one modality shuffled.

The expensive part, encoding, happens once: clean embeddings come from the embedding
cache, and these analyses run the fusion head on them with the presence mask changed
(missing modalities), one modality's rows shuffled (reliance), or one modality
re-encoded from corrupted inputs (corruption sweeps). Corrupted embeddings are shared
between checkpoints whose encoder has the same ``cache_id`` (the demo's fusions share
their encoders), so a sweep over six strategies encodes each corrupted input once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.data import Dataset, Record, load_sample
from core.embeddings import EmbeddedRecords
from core.encoders.base import Encoder
from core.evaluate.results import CorruptionSweep, RelianceScore, SubsetResult
from core.evaluate.scoring import Scorer
from core.inference import encode
from core.sample import DecodedSample


def _gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma * 255.0, size=image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _occlusion(image: np.ndarray, area: float, rng: np.random.Generator) -> np.ndarray:
    # A mid-grey square at a random place: neither ink nor background of typical images.
    h, w = image.shape[:2]
    side_h, side_w = max(1, round(h * math.sqrt(area))), max(1, round(w * math.sqrt(area)))
    top, left = rng.integers(0, h - side_h + 1), rng.integers(0, w - side_w + 1)
    out = image.copy()
    out[top : top + side_h, left : left + side_w] = 128
    return out


def _audio_noise(waveform: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(waveform.astype(np.float64) ** 2))
    if power == 0.0:
        return waveform  # digital silence has no SNR to lower
    noise = rng.normal(0.0, math.sqrt(power / 10 ** (snr_db / 10)), size=waveform.shape)
    return (waveform + noise).astype(np.float32)


def _token_dropout(text: str, rate: float, rng: np.random.Generator) -> str:
    tokens = text.split()
    return " ".join(t for t in tokens if rng.random() >= rate)


@dataclass(frozen=True)
class Corruption:
    """A seeded corruption of one modality's decoded value, at increasing severities."""

    name: str
    modality: str
    description: str
    parameter: str
    levels: tuple[float | None, ...]
    level_labels: tuple[str, ...]
    apply: Callable[[Any, float, np.random.Generator], Any]


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("image_noise", "image", "Image: Gaussian noise", "noise std (fraction of 255)",
                   (None, 0.05, 0.1, 0.2, 0.35, 0.5), ("clean", "0.05", "0.1", "0.2", "0.35", "0.5"), _gaussian_noise),
        Corruption("image_occlusion", "image", "Image: occlusion", "occluded area fraction",
                   (None, 0.1, 0.2, 0.3, 0.45, 0.6), ("clean", "10%", "20%", "30%", "45%", "60%"), _occlusion),
        Corruption("audio_noise", "audio", "Audio: white noise", "SNR (dB)",
                   (None, 20.0, 10.0, 5.0, 0.0, -5.0), ("clean", "20 dB", "10 dB", "5 dB", "0 dB", "-5 dB"), _audio_noise),
        Corruption("text_dropout", "text", "Text: word dropout", "share of words dropped",
                   (None, 0.1, 0.25, 0.5, 0.75, 0.9), ("clean", "10%", "25%", "50%", "75%", "90%"), _token_dropout),
    )
}  # fmt: skip
"""Every sweep; severity 0 is always the clean input."""


class SplitInputs:
    """The records of one split, their decoded samples (decoded once, on first use) and the
    embeddings of corrupted inputs, shared by every checkpoint evaluated on the split.

    Corrupted embeddings are memoised in memory by (encoder cache id, corruption,
    severity, sample content hash, seed).
    """

    def __init__(self, dataset: Dataset, split: str):
        self.dataset = dataset
        self.split = split
        self.records: list[Record] = dataset.split(split)
        self._decoded: list[DecodedSample] | None = None
        self._corrupted: dict[tuple[str, str, int, str, int], np.ndarray] = {}

    @property
    def decoded(self) -> list[DecodedSample]:
        if self._decoded is None:
            self._decoded = [load_sample(r, self.dataset.limits) for r in self.records]
        return self._decoded

    def corrupted_embeddings(
        self, encoder: Encoder, corruption: Corruption, severity: int, rows: list[int], seed: int, device: torch.device
    ) -> torch.Tensor:
        """``Tensor[len(rows), out_dim]``: embeddings of the corrupted ``corruption.modality`` of ``rows``."""
        cache_id = encoder.cache_id()
        modality = corruption.modality
        keys = [(cache_id, corruption.name, severity, self.records[i].content_hash(modality), seed) for i in rows]
        todo = [j for j, key in enumerate(keys) if key not in self._corrupted]
        if todo:
            values = []
            for j in todo:
                # One generator per (sample, severity): results do not depend on evaluation order.
                rng = np.random.default_rng(
                    [seed, list(CORRUPTIONS).index(corruption.name), severity, int(keys[j][3][:15], 16)]
                )
                values.append(corruption.apply(self.decoded[rows[j]].get(modality), corruption.levels[severity], rng))
            fresh = encode(encoder, values, device).cpu().numpy()
            for j, row in zip(todo, fresh, strict=True):
                self._corrupted[keys[j]] = row
        return (
            torch.from_numpy(np.stack([self._corrupted[k] for k in keys])) if keys else torch.zeros(0, encoder.out_dim)
        )


def missing_modality_table(model, data: EmbeddedRecords, scorer: Scorer) -> list[SubsetResult]:
    """Metrics for every non-empty subset of the model's modalities (2^M - 1 rows, largest first)."""
    out = []
    modalities = model.modalities
    for size in range(len(modalities), 0, -1):
        for kept in itertools.combinations(modalities, size):
            mask = torch.tensor([m in kept for m in modalities], dtype=torch.bool)
            proba = scorer.probabilities(model, data.with_present(data.present & mask))
            out.append(SubsetResult(list(kept), scorer.metrics(proba).values))
    return out


def corruption_sweeps(
    model, data: EmbeddedRecords, inputs: SplitInputs, rows: list[int], scorer: Scorer
) -> list[CorruptionSweep]:
    """Metric-vs-severity for each corruption of a modality the model uses.

    ``rows`` maps ``data``'s rows to ``inputs.records``. Severity 0 reuses the clean
    embeddings; other severities re-encode only the corrupted modality.
    """
    out = []
    options = scorer.options
    for corruption in (CORRUPTIONS[name] for name in options.corruptions):
        if corruption.modality not in model.modalities:
            continue
        column = model.modalities.index(corruption.modality)
        have = data.present[:, column].nonzero().flatten()
        encoder = model.encoders[corruption.modality]
        values = []
        for severity in range(len(corruption.levels)):
            embeddings = dict(data.embeddings)
            if severity > 0 and len(have):
                corrupted = embeddings[corruption.modality].clone()
                corrupted[have] = inputs.corrupted_embeddings(
                    encoder, corruption, severity, [rows[i] for i in have.tolist()], options.seed, model.device
                )
                embeddings[corruption.modality] = corrupted
            values.append(scorer.sweep(scorer.probabilities(model, data.with_embeddings(embeddings))))
        out.append(
            CorruptionSweep(
                corruption.name, corruption.modality, corruption.description, corruption.parameter,
                list(corruption.levels), list(corruption.level_labels), values, int(len(have)),
            )
        )  # fmt: skip
    return out


def modality_reliance(model, data: EmbeddedRecords, scorer: Scorer) -> list[RelianceScore]:
    """Permutation importance per modality: accuracy drop when that modality's embeddings
    and presence are shuffled across rows (``reliance_repeats`` seeded permutations)."""
    base = scorer.accuracy(scorer.probabilities(model, data))
    rng = np.random.default_rng(scorer.options.seed)
    out = []
    for column, m in enumerate(model.modalities):
        drops = []
        for _ in range(scorer.options.reliance_repeats):
            perm = torch.from_numpy(rng.permutation(len(data)))
            embeddings = dict(data.embeddings) | {m: data.embeddings[m][perm]}
            present = data.present.clone()
            present[:, column] = data.present[perm, column]
            proba = scorer.probabilities(model, data.with_embeddings(embeddings, present))
            drops.append(base - scorer.accuracy(proba))
        out.append(RelianceScore(m, float(np.mean(drops)), float(np.std(drops)), drops))
    return out
