"""Robustness: metrics with modalities missing, under seeded corruptions, and with one modality shuffled.

The expensive part, encoding, happens once: clean embeddings come from the embedding
cache, and these analyses run the fusion head on them with the presence mask changed
(missing modalities), one modality's rows shuffled (reliance), or one modality
re-encoded from corrupted inputs (corruption sweeps). Corrupted embeddings are shared
between checkpoints whose encoder has the same ``cache_id`` (the demo's fusions share
their encoders), so a sweep over six strategies encodes each corrupted input once; each
input is decoded once per corruption, in worker processes, for all its severities.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from core import distributed
from core.data import Dataset, Record, load_sample, modality_values
from core.data.records import ModalityValues
from core.embeddings import EmbeddedRecords
from core.encoders.base import Encoder
from core.encoders.cache import EmbeddingCache
from core.evaluate.results import CorruptionSweep, RelianceScore, SubsetResult
from core.evaluate.scoring import Scorer
from core.inference import ForwardEach, encode, encodes_in_workers
from core.parallel import prepared_chunks, workers_for
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


SWEEP_CHUNK = 256
"""Rows a worker decodes and corrupts (at every severity) per round trip."""


def corrupted_cache_id(cache_id: str, corruption: str, severity: int, seed: int) -> str:
    """Where the embedding store keeps an encoder's embeddings of corrupted inputs (keyed, like
    clean ones, by the clean input's content hash: a corruption is a function of it and the seed)."""
    return f"{cache_id}|{corruption}@{severity}|seed={seed}"


class _Corrupted(Sequence):
    """Row i: its decoded value under each severity of a corruption, each drawn with one generator
    per (sample, severity), so results depend on neither order nor worker."""

    def __init__(self, values: ModalityValues, hashes: list[str], corruption: str, seed: int):
        self.values, self.hashes, self.corruption, self.seed = values, hashes, corruption, seed

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        corruption = CORRUPTIONS[self.corruption]
        value = self.values[index]
        number = list(CORRUPTIONS).index(self.corruption)
        out = []
        for severity in range(1, len(corruption.levels)):
            rng = np.random.default_rng([self.seed, number, severity, int(self.hashes[index][:15], 16)])
            out.append(corruption.apply(value, corruption.levels[severity], rng))
        return out


class _PrepareEach:
    """A row's corrupted values, each prepared for the encoder (in a worker)."""

    def __init__(self, encoder: Encoder):
        self.encoder = encoder

    def __call__(self, values: list[Any]) -> list[Any]:
        return [self.encoder.prepare(v) for v in values]


def _same(values: Any) -> Any:
    return values


class SplitInputs:
    """The records of one split and the embeddings of their corrupted inputs, shared by every
    checkpoint evaluated on the split.

    Corrupted embeddings are computed for every severity of a corruption in one pass (each
    input decoded once, in worker processes) and kept in the embedding ``store`` when there
    is one (under :func:`corrupted_cache_id`: memory stays bounded), else in memory.

    With ``shard``, every torchrun rank evaluates in step with the others: each computes its
    shards of what is missing (:func:`core.distributed.my_rows`) and every rank gets all of it
    (rank 0 writes the store, the others read it back).
    """

    def __init__(self, dataset: Dataset, split: str, store: EmbeddingCache | None = None, shard: bool = False):
        self.dataset = dataset
        self.split = split
        self.store = store
        self.shard = shard
        self.records: list[Record] = dataset.split(split)
        self._decoded: dict[int, DecodedSample] = {}
        self._corrupted: dict[str, dict[str, np.ndarray]] = {}

    def samples(self, rows: list[int]) -> list[DecodedSample]:
        """The decoded samples of ``rows`` (decoded once, on first use)."""
        for i in rows:
            if i not in self._decoded:
                self._decoded[i] = load_sample(self.records[i], self.dataset.limits)
        return [self._decoded[i] for i in rows]

    def corrupted_embeddings(
        self, encoder: Encoder, corruption: Corruption, severity: int, rows: list[int], seed: int, device: torch.device
    ) -> torch.Tensor:
        """``Tensor[len(rows), out_dim]``: embeddings of the corrupted ``corruption.modality`` of ``rows``."""
        modality = corruption.modality
        keys = [self.records[i].content_hash(modality) for i in rows]
        found, hit = self._lookup(encoder, corruption, severity, keys, seed)
        if self.shard:  # ranks must agree on what to compute
            hit = distributed.everywhere(hit)
        if not hit.all():
            todo = [row for row, h in zip(rows, hit, strict=True) if not h]
            self._compute(encoder, corruption, todo, seed, device)
            found, hit = self._lookup(encoder, corruption, severity, keys, seed)
        return torch.from_numpy(found)

    def _lookup(self, encoder: Encoder, corruption: Corruption, severity: int, keys: list[str], seed: int):
        cache_id = corrupted_cache_id(encoder.cache_id(), corruption.name, severity, seed)
        if self.store is not None:
            return self.store.get_many(cache_id, keys, encoder.out_dim)
        memo = self._corrupted.get(cache_id, {})
        hit = np.array([k in memo for k in keys], dtype=bool)
        found = np.stack([memo[k] for k in keys]) if hit.all() and keys else np.zeros((len(keys), encoder.out_dim), np.float32)
        return found, hit

    def _compute(self, encoder: Encoder, corruption: Corruption, rows: list[int], seed: int, device: torch.device) -> None:
        """Every severity's corrupted embeddings of ``rows``, into the store (or memory)."""
        modality = corruption.modality
        keys = [self.records[i].content_hash(modality) for i in rows]
        mine = distributed.my_rows(len(rows)) if self.shard else list(range(len(rows)))
        records = [self.records[rows[i]] for i in mine]
        variants = _Corrupted(modality_values(records, modality, self.dataset.limits), [keys[i] for i in mine], corruption.name, seed)
        on_device = encoder.prepares_on(device)
        severities = range(1, len(corruption.levels))
        parts: dict[int, list[np.ndarray]] = {s: [] for s in severities}
        prepare = _same if on_device else _PrepareEach(encoder)
        # On a CPU the workers also encode what they prepared (one model per core), as encode() does.
        in_workers = ForwardEach(encoder) if encodes_in_workers(device, on_device, None) else None
        for chunk in prepared_chunks(variants, prepare, SWEEP_CHUNK, workers_for(modality), finish=in_workers):
            for k, severity in enumerate(severities):
                if in_workers is not None:  # the chunk holds each severity's embeddings
                    parts[severity].append(chunk[k].numpy())
                else:
                    items = [row[k] for row in chunk]
                    parts[severity].append(encode(encoder, items, device, prepare=None if on_device else _same).cpu().numpy())
        for severity, chunks in parts.items():
            cache_id = corrupted_cache_id(encoder.cache_id(), corruption.name, severity, seed)
            vectors = np.concatenate(chunks) if chunks else np.zeros((0, encoder.out_dim), np.float32)
            if self.shard:
                vectors = distributed.merge_rows(len(rows), mine, vectors)
            if self.store is None:
                self._corrupted.setdefault(cache_id, {}).update(zip(keys, vectors, strict=True))
            elif not self.shard or distributed.context().is_main:
                self.store.put_many(cache_id, keys, vectors)
        if self.shard and self.store is not None:
            distributed.barrier()  # rank 0 has written them: every rank reads them back


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


def sweep_sample(n_rows: int, options) -> np.ndarray | None:
    """The rows a corruption sweep is scored on: ``None`` (all) when there are at most
    ``options.sweep_rows`` (or it is 0), else that many, drawn with ``options.seed`` and sorted.
    It depends only on the split's size and the seed, so every checkpoint of a split gets the
    same rows and shares their corrupted embeddings."""
    if options.sweep_rows <= 0 or n_rows <= options.sweep_rows:
        return None
    rng = np.random.default_rng([options.seed, n_rows, 2024])
    return np.sort(rng.choice(n_rows, size=options.sweep_rows, replace=False))


def corruption_sweeps(
    model, data: EmbeddedRecords, inputs: SplitInputs, rows: list[int], scorer: Scorer
) -> list[CorruptionSweep]:
    """Metric-vs-severity for each corruption of a modality the model uses, on every row or on
    the seeded :func:`sweep_sample` of a large split.

    ``rows`` maps ``data``'s rows to ``inputs.records``. Severity 0 reuses the clean
    embeddings; other severities re-encode only the corrupted modality.
    """
    out = []
    options = scorer.options
    n_rows = len(data)
    sample = sweep_sample(n_rows, options)
    if sample is not None:
        data, rows = data.subset(sample), [rows[i] for i in sample.tolist()]
        scorer = replace(scorer, y=scorer.y[sample])
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
                list(corruption.levels), list(corruption.level_labels), values, int(len(have)), len(data), n_rows,
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
