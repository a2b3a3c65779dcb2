"""Compression: what int8, fp16, pruning and distillation save and cost, per fusion checkpoint.

For every fusion checkpoint of the folder, compressed copies are made (:func:`core.compress.compress_checkpoint`
with the demo's defaults: ``int8``, ``fp16``, ``prune:0.5``, ``distill`` into half the width), then
parent and copies are measured side by side on the CPU:

- ``test_accuracy``, ``balanced_accuracy``: of the card (the whole test split, through each model's
  own encoders); ``accuracy_lost_points``: parent minus copy, in percentage points;
  ``of_parent``: copy / parent accuracy;
- ``disk_bytes``: the weights file; ``parameter_bytes``: weights and buffers in memory at their
  precision (:func:`core.compress.storage.footprint`);
- ``model``: prepared inputs -> logits (encoders, fusion, head: what compression changes),
  median ms per call at batch 1 and at ``large_batch``; ``fusion``: embeddings -> logits, the
  same two; ``end_to_end_batch1_ms``: decoded sample -> probabilities (adds preprocessing).
  Variants are timed round-robin, ``repeats`` rounds, medians kept, so load on a shared machine
  hits them alike; ``*_over_parent`` are copy / parent time ratios of the same round-robin.
- ``linear_break_even``: one ``nn.Linear(d, d)`` in float32 and dynamically quantised to int8,
  per width and batch: where int8 starts to pay on this CPU.

Options (all optional): ``data``, ``checkpoints``, ``names`` (checkpoints, default every fusion),
``methods``, ``out`` (keep the compressed checkpoints there; default a temporary folder),
``quick``, ``repeats``, ``large_batch``.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.card import list_checkpoints
from core.checkpoints import load_checkpoint, versions
from core.compress import CompressOptions, compress_checkpoint, default_name
from core.compress.storage import footprint, quantize_int8
from core.data import load_dataset, load_sample
from core.device import describe_device
from core.encoders.cache import EmbeddingCache
from core.inference import BatchSize, predict_proba
from core.model import MultimodalClassifier, PreparedBatch
from core.settings import settings
from core.timing import timed

METHODS = ("int8", "fp16", "prune:0.5", "distill")
WIDTHS = (64, 128, 256, 512, 1024, 2048)
CPU = torch.device("cpu")


def _forward(model: MultimodalClassifier, batch: PreparedBatch) -> torch.Tensor:
    with torch.inference_mode():
        return model.classify(model.embed(batch), batch.present)


def _classify(model: MultimodalClassifier, embeddings: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.classify(embeddings, present)


def _median_ms(calls: list) -> float:
    """Median milliseconds of calling each of ``calls`` once."""
    return 1000 * statistics.median(timed(call, CPU)[1] for call in calls)


def time_side_by_side(models: dict[str, MultimodalClassifier], samples: list, repeats: int, singles: int) -> dict[str, dict]:
    """Batch-1 and large-batch medians of every model, measured round-robin."""
    probe = next(iter(models.values()))
    one = [probe.prepare([s]) for s in samples[:singles]]  # preprocessing is the same for every variant
    large = probe.prepare(samples)
    embedded = {name: (m.embed(large), m.embed(one[0])) for name, m in models.items()}
    for model in models.values():  # warm-up: lazy initialisation, allocator, packed kernels
        _forward(model, one[0])
        _forward(model, large)
    times: dict[str, dict[str, list[float]]] = {n: {k: [] for k in ("model_1", "model_large", "fusion_1", "fusion_large", "e2e_1")} for n in models}
    for _ in range(repeats):
        for name, model in models.items():
            big, small = embedded[name]
            record = times[name]
            record["model_1"].append(_median_ms([lambda b=b, m=model: _forward(m, b) for b in one]))
            record["model_large"].append(1000 * timed(lambda m=model: _forward(m, large), CPU)[1])
            record["fusion_1"].append(_median_ms([lambda m=model, e=small, p=one[0].present: _classify(m, e, p)] * singles))
            record["fusion_large"].append(1000 * timed(lambda m=model, e=big: _classify(m, e, large.present), CPU)[1])
            record["e2e_1"].append(_median_ms([lambda s=s, m=model: predict_proba(m, [s], batch=BatchSize(1)) for s in samples[:singles]]))
    return {
        name: {
            "model": {"batch_1_ms": statistics.median(t["model_1"]), "large_batch_ms": statistics.median(t["model_large"])},
            "fusion": {"batch_1_ms": statistics.median(t["fusion_1"]), "large_batch_ms": statistics.median(t["fusion_large"])},
            "end_to_end_batch1_ms": statistics.median(t["e2e_1"]),
        }
        for name, t in times.items()
    }


def linear_break_even(widths: tuple[int, ...], batches: tuple[int, ...], repeats: int) -> list[dict[str, Any]]:
    """float32 vs dynamic int8 time of one ``nn.Linear(d, d)`` per width and batch, round-robin."""
    rows = []
    for width in widths:
        torch.manual_seed(0)
        dense = nn.Sequential(nn.Linear(width, width)).eval()
        int8 = quantize_int8(nn.Sequential(nn.Linear(width, width)).eval())
        for batch in batches:
            x = torch.randn(batch, width)
            runs = {"float32": dense, "int8": int8}
            for layer in runs.values():
                with torch.inference_mode():
                    layer(x)
            ms: dict[str, list[float]] = {k: [] for k in runs}
            calls = max(3, int(2e6 // (width * width * batch)) + 1)
            for _ in range(repeats):
                for name, layer in runs.items():
                    with torch.inference_mode():
                        ms[name].append(_median_ms([lambda layer=layer, x=x: layer(x)] * calls))
            f32, i8 = statistics.median(ms["float32"]), statistics.median(ms["int8"])
            rows.append({"width": width, "batch": batch, "float32_ms": f32, "int8_ms": i8, "int8_over_float32": i8 / f32})
    return rows


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Compress every fusion checkpoint with every method and measure parents and copies side by side."""
    quick = bool(options.get("quick"))
    dataset = load_dataset(Path(options.get("data") or settings().demo_data))
    root = Path(options.get("checkpoints") or settings().checkpoints)
    infos = [i for i in list_checkpoints(root) if i.error is None and i.kind == "fusion" and i.compression is None]
    if options.get("names"):
        infos = [i for i in infos if i.name in options["names"]]
    if not infos:
        raise FileNotFoundError(f"No fusion checkpoint in {root}; build them with `python -m core demo`.")
    methods = tuple(options.get("methods") or METHODS)
    repeats = int(options.get("repeats", 2 if quick else 5))
    large_batch = int(options.get("large_batch", 16 if quick else 256))
    singles = 4 if quick else 16
    samples = [load_sample(r, dataset.limits) for r in dataset.split("test")[:large_batch]]
    compress_options = CompressOptions(epochs=2 if quick else None)
    cache = EmbeddingCache()
    keep = options.get("out")
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as scratch:
        out_dir = Path(keep) if keep else Path(scratch)
        checkpoints = {}
        for info in infos:
            paths = {"parent": info.path}
            for method in methods:
                target = out_dir / default_name(info.name, method, compress_options)
                paths[method] = compress_checkpoint(info.path, method, target, data=dataset, options=compress_options, cache=cache).path
            loaded = {k: load_checkpoint(p, device=CPU) for k, p in paths.items()}
            timing = time_side_by_side({k: v.model for k, v in loaded.items()}, samples, repeats, singles)
            parent_accuracy = loaded["parent"].card.metric("test", "accuracy")
            variants = {}
            for key, item in loaded.items():
                accuracy = item.card.metric("test", "accuracy")
                parameters, parameter_bytes = footprint(item.model)
                base = timing["parent"]
                variants[key] = {
                    "name": item.name,
                    "test_accuracy": accuracy,
                    "balanced_accuracy": item.card.metric("test", "balanced_accuracy"),
                    "accuracy_lost_points": None if accuracy is None else 100 * (parent_accuracy - accuracy),
                    "of_parent": None if accuracy is None else accuracy / parent_accuracy,
                    "disk_bytes": (item.path / "model.safetensors").stat().st_size,
                    "parameters": parameters,
                    "parameter_bytes": parameter_bytes,
                    "fusion_hidden": item.card.fusion_config.get("hidden"),
                    **timing[key],
                    "model_batch1_over_parent": timing[key]["model"]["batch_1_ms"] / base["model"]["batch_1_ms"],
                    "model_large_over_parent": timing[key]["model"]["large_batch_ms"] / base["model"]["large_batch_ms"],
                    "fusion_batch1_over_parent": timing[key]["fusion"]["batch_1_ms"] / base["fusion"]["batch_1_ms"],
                    "fusion_large_over_parent": timing[key]["fusion"]["large_batch_ms"] / base["fusion"]["large_batch_ms"],
                    "compression": item.card.compression.to_json() if item.card.compression else None,
                }
            checkpoints[info.name] = variants
    return {
        "section": "compress",
        "device": describe_device(CPU),
        "cpu_threads": torch.get_num_threads(),
        "versions": versions(),
        "methods": list(methods),
        "large_batch": len(samples),
        "repeats": repeats,
        "checkpoints": checkpoints,
        "linear_break_even": linear_break_even(WIDTHS[:3] if quick else WIDTHS, (1, large_batch), repeats),
    }


def table(section: dict[str, Any]) -> str:
    """README tables: each checkpoint's variants side by side, then the int8 break-even."""
    from bench.table import _num, _ratio, _rows

    def ms(timing: dict[str, float], ratio: float) -> str:
        return f"{_num(timing)} ({_ratio(ratio)})"

    rows = []
    for name, variants in section.get("checkpoints", {}).items():
        for key, v in variants.items():
            rows.append([
                f"`{v['name']}`" if key != "parent" else f"**`{name}`**",
                key,
                _num(v["test_accuracy"]),
                "–" if key == "parent" else f"{v['accuracy_lost_points']:+.1f}",
                _num(v["disk_bytes"] / 1e3),
                _num(v["parameter_bytes"] / 1e3),
                ms(v["model"]["batch_1_ms"], v["model_batch1_over_parent"]),
                ms(v["model"]["large_batch_ms"], v["model_large_over_parent"]),
                ms(v["fusion"]["batch_1_ms"], v["fusion_batch1_over_parent"]),
                ms(v["fusion"]["large_batch_ms"], v["fusion_large_over_parent"]),
            ])  # fmt: skip
    batch = section.get("large_batch", "?")
    main = _rows(
        ["Checkpoint", "Method", "Test acc.", "Lost (points)", "Disk (kB)", "Param. memory (kB)",
         "Model, batch 1 (ms, × parent)", f"Model, batch {batch} (ms, × parent)",
         "Fusion, batch 1 (ms, × parent)", f"Fusion, batch {batch} (ms, × parent)"],
        rows,
    )  # fmt: skip
    widths = section.get("linear_break_even", [])
    batches = sorted({r["batch"] for r in widths})
    by = {(r["width"], r["batch"]): r for r in widths}
    even_rows = [
        [str(w)] + [f"{_num(by[w, b]['float32_ms'])} / {_num(by[w, b]['int8_ms'])} ({_ratio(by[w, b]['int8_over_float32'])})" for b in batches]
        for w in sorted({r["width"] for r in widths})
    ]
    even = _rows(["Linear d×d", *(f"batch {b}: float32 / int8 ms (int8 ×)" for b in batches)], even_rows)
    return f"{main}\n\n{even}"
