"""Encoder throughput: the physical limit every other figure is compared to.

Per encoder (the builtin image/audio/text CNNs and the pretrained MiniLM,
EfficientNet-Lite0 and Resemblyzer; one that cannot be loaded is skipped with the
reason), on demo test inputs:

- ``prepare``: CPU preprocessing (``prepare`` of each value + ``collate``), samples/s;
- ``forward``: host-to-device copy + ``forward`` under ``inference_mode`` (autocast on
  CUDA; pinned-memory copies), samples/s at batch 1 and over a batch-size sweep that
  stops growing once throughput stops improving or memory runs out.

Throughputs come from the fastest of several repeats (after a warm-up), the usual
estimate of a cost on a machine shared with other jobs; latencies are medians and p95.

Options (all optional): ``data`` (dataset folder, default the demo), ``device``,
``quick`` (few sizes and repeats, for smoke tests), ``batch_sizes``, ``samples``
(decoded values per modality), ``encoders`` (``"modality/choice"`` names to run, e.g.
``["image/builtin"]``; default all six).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from core.checkpoints import versions
from core.data import Dataset, load_dataset, load_sample
from core.device import autocast, describe_device, is_out_of_memory, move_to, pick_device
from core.encoders import encoder_from_choice
from core.encoders.base import Encoder
from core.settings import settings
from core.timing import latency_summary, repeat_timed

BATCH_SIZES: tuple[int, ...] = (1, 8, 32, 64, 128, 256)
QUICK_BATCH_SIZES: tuple[int, ...] = (1, 8)
ENCODERS: tuple[str, ...] = (
    "image/builtin",
    "audio/builtin",
    "text/builtin",
    "image/efficientnet-lite0",
    "audio/resemblyzer",
    "text/minilm",
)
PREPARE_BATCH = 64
"""Values prepared and collated per preprocessing measurement."""


def decoded_values(dataset: Dataset, modality: str, limit: int, split: str = "test") -> list[Any]:
    """Up to ``limit`` decoded values of ``modality`` from ``split`` (the whole dataset if the split has none)."""
    records = [r for r in dataset.split(split) if getattr(r, modality) is not None]
    records = records or [r for r in dataset.records if getattr(r, modality) is not None]
    return [load_sample(r, dataset.limits).get(modality) for r in records[:limit]]


def _cycled(items: Sequence[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)]


def encoder_limits(
    encoder: Encoder,
    values: Sequence[Any],
    device: torch.device,
    *,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    min_seconds: float = 0.5,
) -> dict[str, Any]:
    """Preprocessing and forward throughput of ``encoder`` (already on ``device``) on ``values``.

    Returns a dict with ``prepare`` (samples/s of prepare + collate on the CPU),
    ``forward`` (``batch_1`` and ``best``: samples/s of copy + forward, and the
    ``sweep`` of every size tried) and ``parameters``. Values are reused cyclically to
    fill batches larger than ``len(values)``.
    """
    encoder.eval()
    encoder.collate([encoder.prepare(values[0])])  # warm-up: librosa's first call alone takes seconds
    prepare_items = _cycled(values, min(PREPARE_BATCH, max(batch_sizes)))
    prepare_times = repeat_timed(
        lambda: encoder.collate([encoder.prepare(v) for v in prepare_items]),
        torch.device("cpu"),
        min_repeats=2,
        min_seconds=min_seconds,
    )
    prepared = [encoder.prepare(v) for v in values[: max(batch_sizes)]]

    sweep: list[dict[str, Any]] = []
    for batch_size in batch_sizes:
        batch = encoder.collate(_cycled(prepared, batch_size))
        if device.type == "cuda":
            batch = _pinned(batch)  # page-locked, so the copy below is asynchronous

        def forward(batch: Any = batch) -> torch.Tensor:
            with torch.inference_mode(), autocast(device):
                return encoder(move_to(batch, device)).float()

        try:
            forward()  # warm-up: lazy init, cuDNN/oneDNN kernel choice for this shape
            times = repeat_timed(forward, device, min_repeats=3, min_seconds=min_seconds)
        except (RuntimeError, torch.OutOfMemoryError) as err:
            if not is_out_of_memory(err):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            sweep.append({"batch_size": batch_size, "error": "out of memory"})
            break
        # Throughput from the fastest repeat: on a shared machine the others include other jobs' time.
        sweep.append({"batch_size": batch_size, "samples_per_s": batch_size / min(times), **latency_summary(times)})
        rates = [s["samples_per_s"] for s in sweep if "samples_per_s" in s]
        if len(rates) > 1 and rates[-1] < max(rates[:-1]):
            break  # bigger batches stopped paying off
    measured = [s for s in sweep if "samples_per_s" in s]
    best = max(measured, key=lambda s: s["samples_per_s"])
    batch_1 = next((s for s in measured if s["batch_size"] == 1), measured[0])
    prepare_seconds = min(prepare_times)
    return {
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "out_dim": encoder.out_dim,
        "prepare": {
            "samples_per_s": len(prepare_items) / prepare_seconds,
            "batch_size": len(prepare_items),
            "repeats": len(prepare_times),
        },
        "forward": {
            "batch_1": batch_1,
            "best": best,
            "best_over_batch_1": best["samples_per_s"] / batch_1["samples_per_s"],
            "sweep": sweep,
        },
    }


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Measure every encoder's limits on the current device; returns a JSON-ready dict."""

    quick = bool(options.get("quick"))
    device = pick_device(options.get("device"))
    dataset = load_dataset(Path(options.get("data") or settings().demo_data))
    batch_sizes = tuple(options.get("batch_sizes") or (QUICK_BATCH_SIZES if quick else BATCH_SIZES))
    samples = int(options.get("samples", 16 if quick else max(batch_sizes)))
    min_seconds = float(options.get("min_seconds", 0.05 if quick else 0.5))
    wanted = list(options.get("encoders") or ENCODERS)
    corpus = [r.text for r in dataset.split("train") if r.text]

    values = {m: decoded_values(dataset, m, samples) for m in {name.split("/")[0] for name in wanted}}
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in wanted:
        modality, choice = name.split("/", 1)
        if not values[modality]:
            skipped[name] = f"the dataset has no {modality} values"
            continue
        try:
            encoder = encoder_from_choice(modality, choice, corpus=corpus).to(device)
        except Exception as err:  # a missing package or weights must not hide the other encoders
            skipped[name] = f"{type(err).__name__}: {err}"
            continue
        results[name] = {
            "modality": modality,
            "encoder": choice,
            **encoder_limits(encoder, values[modality], device, batch_sizes=batch_sizes, min_seconds=min_seconds),
        }
        del encoder
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "section": "encode",
        "device": describe_device(device),
        "versions": versions(),
        "batch_sizes": list(batch_sizes),
        "values_per_modality": {m: len(v) for m, v in sorted(values.items())},
        "autocast": "bf16/fp16 on CUDA" if device.type == "cuda" else "off",
        "encoders": results,
        "skipped": skipped,
    }


def _pinned(batch: Any) -> Any:
    """A collated batch (tensor or dict of tensors) in page-locked memory, for asynchronous copies to a GPU."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    return {key: value.pin_memory() for key, value in batch.items()}
