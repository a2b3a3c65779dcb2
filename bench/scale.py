"""Scale: the batch jobs on synthetic datasets of N rows (default 10,000, 30,000 and 100,000),
measured in one run so that the ratios between sizes can be read directly.

For each N, in a fresh process (so its peak memory is that size's alone) and with an empty
cache folder:

- ``validate``: ``validate_dataset`` cold (every file decoded, in worker processes) and warm
  (file verdicts remembered), then ``load_dataset`` (invalid rows skipped);
- ``embed``: every row's modalities through fresh built-in encoders into an empty
  embedding store (cold), then again (warm: all hits);
- ``train``: one epoch of each built-in encoder and of an ``early`` fusion head
  (``Trainer`` with ``encoder_epochs=fusion_epochs=1``, the default embedding store of the
  size's cache folder, as ``python -m core train`` uses): wall time, CPU use (100% = one
  core busy; children included) and rows per second;
- ``evaluate``: the test split with robustness on, as Compare's first visit after training
  computes it: clean embeddings from the store training filled, corruption sweeps on their
  seeded sample of rows (``EvaluationOptions.sweep_rows``) re-encoded cold;
- ``memory``: peak resident memory of the process and of its largest child.

Then, unless ``dashboard`` is false (the default in ``quick`` mode), the dashboard section
(:mod:`bench.dashboard`) runs on the same dataset, invalid rows included (the dashboard
leaves them out with a warning), its checkpoints and the size's cache folder (validation
and embeddings cached, as after ``validate`` and ``train``): first page load, first visit
of each page, later switches, server memory.

``ratios``: for every timed phase, ``(seconds at N / seconds at the smallest N) / (N /
smallest N)``: 1.0 is linear scaling, below 1 better than linear.

Options: ``sizes`` (list of N), ``quick`` (N = 300, few bootstrap resamples, no browser),
``root`` (where generated datasets are kept and reused; default ``FUSION_CACHE_DIR/bench-scale``),
``dashboard``, ``seed``, ``bootstrap``.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

DEFAULT_SIZES = (10_000, 30_000, 100_000)
QUICK_SIZE = 300


def run(options: dict[str, Any]) -> dict[str, Any]:
    from bench.scale_data import synthesize
    from core.parallel import cpu_count
    from core.settings import settings

    quick = bool(options.get("quick"))
    sizes = sorted(int(n) for n in (options.get("sizes") or ((QUICK_SIZE,) if quick else DEFAULT_SIZES)))
    seed = int(options.get("seed", 0))
    root = Path(options.get("root") or settings().cache_dir / "bench-scale")
    browser = bool(options.get("dashboard", not quick))
    job = {"seed": seed, "bootstrap": int(options.get("bootstrap", 20 if quick else 200)), "device": options.get("device")}
    per_size: dict[str, Any] = {}
    for n in sizes:
        started = time.perf_counter()
        folder = synthesize(root / "data", n, seed)
        generated_s = time.perf_counter() - started
        scratch = root / "runs" / f"n{n}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        # A fresh process per size: its peak memory is this size's, and nothing stays warm in memory.
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            measured = pool.submit(measure, {**job, "data": str(folder), "scratch": str(scratch)}).result()
        measured["generate_s"] = generated_s
        if browser:
            from bench import dashboard

            measured["dashboard"] = _dashboard_figures(
                dashboard.run(
                    {
                        "data": str(folder),
                        "checkpoints": str(scratch / "checkpoints"),
                        "cache_dir": str(scratch / "cache"),
                        "quick": True,
                    }
                )
            )
        per_size[str(n)] = measured
    return {
        "section": "scale",
        "sizes": sizes,
        "cores": cpu_count(),
        "per_size": per_size,
        "ratios": ratios(per_size, sizes),
    }


@contextmanager
def _timed(out: dict[str, Any], key: str, rows: int | None = None):
    """Wall seconds and CPU use (this process and its finished children) of the block, into ``out[key]``."""
    before, started = os.times(), time.perf_counter()
    yield
    after, wall = os.times(), time.perf_counter() - started  # os.times() ticks in 10 ms: wall from the perf counter
    cpu = sum(after[i] - before[i] for i in range(4))
    out[key] = {"s": round(wall, 4), "cpu_percent": round(100 * cpu / wall, 1) if wall > 0 else None}
    if rows is not None:
        out[key]["rows"] = rows
        out[key]["rows_per_s"] = round(rows / wall, 1) if wall > 0 else None


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Every phase on one dataset (run in a fresh process: it sets its own cache folder)."""
    scratch = Path(job["scratch"])
    os.environ["FUSION_CACHE_DIR"] = str(scratch / "cache")  # empty: cold means cold
    from core.settings import configure_process

    configure_process()

    from core.data import load_dataset, validate_dataset
    from core.embeddings import embed_records
    from core.encoders import encoder_from_choice
    from core.encoders.cache import EmbeddingCache
    from core.evaluate import EvaluationOptions, SplitInputs, evaluate
    from core.fusion import build_fusion
    from core.model import MultimodalClassifier
    from core.train import TrainConfig, Trainer

    out: dict[str, Any] = {}
    with _timed(out, "validate_cold"):
        report = validate_dataset(job["data"])
    with _timed(out, "validate_warm"):
        validate_dataset(job["data"])
    with _timed(out, "load"):
        dataset = load_dataset(job["data"], skip_invalid=True)
    rows = len(dataset.records)
    out["rows"] = {"manifest": report.n_rows, "invalid": len(report.bad_rows), "valid": rows, "split": dataset.split_sizes()}

    corpus = [r.text for r in dataset.split("train") if r.text]
    encoders = {m: encoder_from_choice(m, "builtin", corpus=corpus) for m in ("image", "audio", "text")}
    fusion = build_fusion("early", in_dims={m: e.out_dim for m, e in encoders.items()}, num_classes=len(dataset.classes))
    model = MultimodalClassifier(encoders, fusion, dataset.classes).eval()
    store = EmbeddingCache(scratch / "embeddings")
    inputs = sum(len(r.present()) for r in dataset.records)
    with _timed(out, "embed_cold", rows):
        embed_records(model, dataset.records, cache=store, limits=dataset.limits)
    out["embed_cold"]["inputs_per_s"] = round(inputs / out["embed_cold"]["s"], 1)
    with _timed(out, "embed_warm", rows):
        embed_records(model, dataset.records, cache=store, limits=dataset.limits)

    config = TrainConfig(encoder_epochs=1, fusion_epochs=1, seed=job["seed"], device=job.get("device"))
    stages: list[tuple[float, str]] = []

    def note(event: dict[str, Any]) -> None:
        if event.get("event") == "stage":
            stages.append((time.perf_counter(), str(event.get("stage"))))

    checkpoints = scratch / "checkpoints"
    train_rows = len(dataset.split("train"))
    started = time.perf_counter()
    with _timed(out, "train_one_epoch", train_rows):
        Trainer(dataset, checkpoints, config, cache=EmbeddingCache(), show_progress=False, callback=note).run(["early"])
    fusion_starts = [t for t, stage in stages if stage == "computing embeddings"]
    if fusion_starts:  # stage 1 (encoders, side by side on a CPU) until the fusion's embeddings start
        out["train_one_epoch"]["encoders_s"] = round(fusion_starts[0] - started, 3)

    options = EvaluationOptions(bootstrap=job["bootstrap"], seed=job["seed"], analysis=False, cost=False)
    test_rows = len(dataset.split("test"))
    # Clean embeddings from the store training filled; the corrupted ones kept in memory only, so
    # the dashboard's Compare below computes its sweeps cold, as on a first visit after training.
    with _timed(out, "evaluate", test_rows):
        report = evaluate(
            [checkpoints / "early"], dataset, "test", options, embedding_cache=True, inputs=SplitInputs(dataset, "test")
        )
    sweeps = report.checkpoints[0].corruptions
    out["evaluate"]["sweep_rows"] = sweeps[0].n_scored if sweeps else 0

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out["memory"] = {"peak_rss_mib": round(own, 1), "largest_child_peak_rss_mib": round(children, 1)}
    return out


def _dashboard_figures(result: dict[str, Any]) -> dict[str, Any]:
    """The dashboard section's figures that matter at size (or why it skipped)."""
    if "skipped" in result:
        return {"skipped": result["skipped"]}
    return {
        "first_page_s": result["cold_start"]["first_page_s"],
        "first_visit_s": result["page_switch"]["first_visit_s"],
        "later_page_median_s": result["page_switch"]["warm_median_s"],
        "later_page_max_s": result["page_switch"]["warm_max_s"],
        "server_peak_rss_mib": result["cold_start"]["peak_rss_mib"],
        "memory": result["memory"],
    }


TIMED = ("validate_cold", "validate_warm", "load", "embed_cold", "embed_warm", "train_one_epoch", "evaluate")


def ratios(per_size: dict[str, Any], sizes: list[int]) -> dict[str, dict[str, float]]:
    """Per phase and size: time ratio to the smallest size over the size ratio (1.0: linear)."""
    if len(sizes) < 2:
        return {}
    base = sizes[0]
    out: dict[str, dict[str, float]] = {}
    for phase in TIMED:
        first = per_size[str(base)][phase]["s"]
        if not first:
            continue
        out[phase] = {str(n): round((per_size[str(n)][phase]["s"] / first) / (n / base), 3) for n in sizes[1:]}
    for key in ("peak_rss_mib",):
        first = per_size[str(base)]["memory"][key]
        out[f"memory_{key}"] = {str(n): round(per_size[str(n)]["memory"][key] / first, 3) for n in sizes[1:]}
    return out
