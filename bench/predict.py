"""Prediction speed per checkpoint, against the encoders' own limits measured in the same run.

- ``upload_latency``: one uploaded sample, bytes -> :mod:`core.io` decode -> ``prepare``
  -> ``embed`` -> ``classify`` + softmax, models already loaded; median and p95 of the
  whole and of each phase.
- ``split_throughput``: every decoded test sample -> probabilities with
  ``predict_proba`` (batched). No pipeline can beat its encoders, so the floor is
  ``sum over modalities of N_m / forward_throughput_m`` (best batch size, from
  :func:`bench.encode.encoder_limits` on the same encoders and inputs);
  ``over_floor`` is measured time / floor (1.0 = nothing but encoder forward passes).

Options (all optional): ``data`` (dataset folder, default the demo), ``checkpoints``
(folder), ``names`` (checkpoint names, default every readable one), ``device``,
``quick``, ``repeats`` (upload latency repeats), ``batch_size`` (of ``predict_proba``,
default 64), ``max_samples`` (test samples used for throughput). Throughput uses the
fastest of its repeats, latency the median and p95.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.encode import BATCH_SIZES, QUICK_BATCH_SIZES, encoder_limits
from core.card import list_checkpoints
from core.checkpoints import load_checkpoint, versions
from core.data import Dataset, Record, load_dataset, load_sample, record_to_sample
from core.device import autocast, describe_device, pick_device
from core.inference import BatchSize, predict_proba
from core.io import decode_sample
from core.model import MultimodalClassifier
from core.sample import Sample
from core.settings import Limits, settings
from core.timing import latency_summary, repeat_timed, synchronize

PHASES = ("decode", "prepare", "encode", "fuse")


def _upload_record(dataset: Dataset) -> Record:
    """The first test record with the most modalities: the heaviest upload the demo offers."""
    records = dataset.split("test") or dataset.records
    return max(records, key=lambda r: len(r.present()))


def _upload_phases(model: MultimodalClassifier, upload: Sample, limits: Limits) -> dict[str, float]:
    """Seconds of each phase of one prediction from uploaded bytes (device synced at each boundary)."""
    device = model.device
    marks = [time.perf_counter()]
    decoded = decode_sample(upload, limits)
    marks.append(time.perf_counter())
    batch = model.prepare([decoded])
    marks.append(time.perf_counter())
    with torch.inference_mode(), autocast(device):
        embeddings = model.embed(batch)
        synchronize(device)
        marks.append(time.perf_counter())
        logits = model.classify(embeddings, batch.present)
        torch.softmax(logits.float(), dim=-1).cpu().numpy()
    marks.append(time.perf_counter())
    return {phase: marks[i + 1] - marks[i] for i, phase in enumerate(PHASES)}


def upload_latency(model: MultimodalClassifier, upload: Sample, limits: Limits, repeats: int) -> dict[str, Any]:
    """Median/p95 of the whole prediction and of each phase over ``repeats`` runs (after one warm-up)."""
    _upload_phases(model, upload, limits)
    runs = [_upload_phases(model, upload, limits) for _ in range(repeats)]
    return {
        "total": latency_summary([sum(r.values()) for r in runs]),
        **{phase: latency_summary([r[phase] for r in runs]) for phase in PHASES},
    }


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Measure upload latency and test-split throughput of each checkpoint; returns a JSON-ready dict."""

    quick = bool(options.get("quick"))
    device = pick_device(options.get("device"))
    dataset = load_dataset(Path(options.get("data") or settings().demo_data))
    root = Path(options.get("checkpoints") or settings().checkpoints)
    infos = [i for i in list_checkpoints(root) if i.error is None]
    if options.get("names"):
        infos = [i for i in infos if i.name in options["names"]]
    if not infos:
        raise FileNotFoundError(f"No readable checkpoints in {root}; build them with `python -m core demo`.")
    repeats = int(options.get("repeats", 5 if quick else 30))
    batch_size = int(options.get("batch_size", 64))
    max_samples = int(options.get("max_samples", 48 if quick else 100_000))
    limits = settings().limits

    record = _upload_record(dataset)
    upload = record_to_sample(record, limits)
    split_records = dataset.split("test")[:max_samples]
    samples = [load_sample(r, dataset.limits) for r in split_records]
    sweep = QUICK_BATCH_SIZES if quick else BATCH_SIZES
    min_seconds = 0.05 if quick else 0.5

    encoder_floor: dict[str, dict[str, Any]] = {}  # keyed by cache id: the demo's strategies share encoders
    checkpoints: dict[str, Any] = {}
    for info in infos:
        model = load_checkpoint(info.path, device=device).model
        latency = upload_latency(model, upload, limits, repeats)

        predict_proba(model, samples[:batch_size], batch=BatchSize(batch_size))  # warm-up at the timed batch shape
        times = repeat_timed(
            lambda model=model: predict_proba(model, samples, batch=BatchSize(batch_size)),
            device,
            min_repeats=1 if quick else 3,
            min_seconds=0.0,
        )
        seconds = min(times)  # fastest repeat, like the encoder limits it is compared to

        floor_s = floor_with_prepare_s = 0.0
        per_modality = {}
        for m in model.modalities:
            values = [s.get(m) for s in samples if s.get(m) is not None]
            if not values:
                continue
            encoder = model.encoders[m]
            key = f"{m}:{encoder.cache_id()}"
            if key not in encoder_floor:
                limits_m = encoder_limits(encoder, values, device, batch_sizes=sweep, min_seconds=min_seconds)
                encoder_floor[key] = {
                    "modality": m,
                    "encoder": encoder.spec().get("kind"),
                    "forward_samples_per_s": limits_m["forward"]["best"]["samples_per_s"],
                    "forward_batch_size": limits_m["forward"]["best"]["batch_size"],
                    "prepare_samples_per_s": limits_m["prepare"]["samples_per_s"],
                }
            limit = encoder_floor[key]
            floor_s += len(values) / limit["forward_samples_per_s"]
            floor_with_prepare_s += len(values) * (
                1 / limit["forward_samples_per_s"] + 1 / limit["prepare_samples_per_s"]
            )
            per_modality[m] = {"samples": len(values), "encoder": key}
        checkpoints[info.name] = {
            "fusion": info.fusion,
            "kind": info.kind,
            "modalities": model.modalities,
            "upload_latency": latency,
            "split_throughput": {
                "samples": len(samples),
                "batch_size": batch_size,
                "seconds": seconds,
                "median_seconds": float(np.median(times)),
                "samples_per_s": len(samples) / seconds,
                "per_modality": per_modality,
                "encoder_floor_s": floor_s,
                "over_floor": seconds / floor_s if floor_s else None,
                "encoder_and_prepare_floor_s": floor_with_prepare_s,
                "over_encoder_and_prepare_floor": seconds / floor_with_prepare_s if floor_with_prepare_s else None,
            },
        }
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "section": "predict",
        "device": describe_device(device),
        "versions": versions(),
        "upload": {"record": record.id, "modalities": upload.present(), "repeats": repeats},
        "split": "test",
        "encoder_sweep": list(sweep),
        "encoder_limits": encoder_floor,
        "checkpoints": checkpoints,
    }
