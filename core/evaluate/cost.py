"""What a checkpoint costs: parameters, latency, throughput and peak memory on its device."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core.compress.storage import footprint
from core.device import describe_device
from core.embeddings import EmbeddedRecords, classify_embedded
from core.evaluate.results import Cost, EvaluationOptions
from core.inference import BatchSize, predict_proba
from core.sample import DecodedSample
from core.timing import timed


def _rss_kib(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _measure_peak_memory(run: Callable[[], None], device: torch.device) -> tuple[float | None, str]:
    """Peak memory of ``run()`` in MiB and how it was measured."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return (
            torch.cuda.max_memory_allocated(device) - before
        ) / 2**20, "torch.cuda.max_memory_allocated (above allocations before the pass)"
    before = _rss_kib("VmRSS")
    try:
        # Linux: writing 5 resets the process's peak RSS (VmHWM), so the peak is this pass's own.
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    if before is not None and reset:
        run()
        peak = _rss_kib("VmHWM")
        return (
            max(peak - before, 0) / 1024 if peak is not None else None
        ), "peak RSS increase (VmHWM after resetting it via /proc/self/clear_refs)"
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB elsewhere
    return grew * unit / 2**20, "growth of the process's lifetime peak RSS (resource.ru_maxrss); 0 if it peaked earlier"


def measure_cost(
    model,
    samples: list[DecodedSample],
    data: EmbeddedRecords,
    options: EvaluationOptions,
    single_calls: int = 8,
    weights_file: Path | None = None,
) -> Cost:
    """Parameter counts and memory, size on disk of ``weights_file``, batch-1 latency and large-batch
    throughput (end to end and fusion only), peak memory."""
    device = model.device
    batch = samples[: options.large_batch]
    emb_batch = data.subset(list(range(min(options.large_batch, len(data)))))
    singles = samples[:single_calls]

    def seconds(fn: Callable[[], object]) -> float:
        return timed(fn, device)[1]

    predict_proba(model, singles[:2], batch=BatchSize(1))  # warm-up: lazy initialisation, allocator
    e2e_single = [seconds(lambda s=s: predict_proba(model, [s], batch=BatchSize(1))) for s in singles]
    large: list[float] = []
    # One large pass gives both the throughput and the peak memory: preprocessing dominates it on a CPU.
    peak, method = _measure_peak_memory(
        lambda: large.append(seconds(lambda: predict_proba(model, batch, batch=BatchSize(len(batch))))), device
    )
    fusion_rows = [data.subset([i]) for i in range(min(single_calls, len(data)))]
    classify_embedded(model, fusion_rows[0])
    fusion_single = [seconds(lambda r=r: classify_embedded(model, r)) for r in fusion_rows]
    fusion_large = min(seconds(lambda: classify_embedded(model, emb_batch)) for _ in range(3))
    fusion_params = sum(footprint(part)[0] for part in (model.fusion, model.head))
    parameters, parameter_bytes = footprint(model)
    return Cost(
        device=describe_device(device),
        parameters=parameters,
        fusion_parameters=int(fusion_params),
        large_batch=len(batch),
        latency_ms_end_to_end=float(np.median(e2e_single) * 1000),
        throughput_end_to_end=len(batch) / large[0],
        latency_ms_fusion=float(np.median(fusion_single) * 1000),
        throughput_fusion=len(emb_batch) / fusion_large,
        peak_memory_mb=peak,
        peak_memory_method=method,
        disk_bytes=weights_file.stat().st_size if weights_file is not None and weights_file.is_file() else None,
        parameter_bytes=parameter_bytes,
    )
