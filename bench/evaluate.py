"""Time a full evaluation of the six demo fusion checkpoints on the demo test split, analysis included.

Besides the timings, the report records each checkpoint's ground-truth explanation rates
(how often modality Shapley credits what the demo's manifest records), its share of
accuracy owed to interactions (EMAP), its worst slices, and the verdict.

The evaluation cache is not used (every metric, curve and robustness analysis is
computed); the embedding cache is, and whether it was warm is recorded, since
encoding the clean inputs is the part a second run never repeats.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from core.data import load_dataset
from core.device import describe_device, pick_device
from core.encoders.cache import EmbeddingCache
from core.evaluate import EvaluationOptions, evaluate, library_versions
from core.fusion import FUSION_NAMES
from core.report import write_html_report
from core.settings import settings

TARGET_SECONDS = 60.0


def _embedding_cache_state(cache: EmbeddingCache, checkpoint: Path, records: list) -> str:
    """``warm`` when every clean test embedding of the checkpoint's encoders is cached, else ``cold``/``partial``."""
    from core.checkpoints import load_checkpoint

    model = load_checkpoint(checkpoint).model
    hits = total = 0
    for m in model.modalities:
        encoder = model.encoders[m]
        keys = [record.content_hash(m) for record in records if getattr(record, m) is not None]
        total += len(keys)
        hits += int(cache.get_many(encoder.cache_id(), keys, encoder.out_dim)[1].sum())
    return "warm" if hits == total else "cold" if hits == 0 else f"partial ({hits}/{total})"


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the demo fusions with JSON + HTML output and report the timings.

    Options (all optional): ``data`` (dataset folder, default ``demo_data``), ``checkpoints``
    (folder, default: the configured checkpoint folder), ``names`` (checkpoint
    names, default the six fusions), ``split`` (default ``test``), ``bootstrap`` (default 1000),
    ``out`` (folder for the JSON and HTML; a temporary one by default).
    """

    data = Path(options.get("data") or settings().demo_data)
    root = Path(options.get("checkpoints") or settings().checkpoints)
    names = list(options.get("names") or FUSION_NAMES)
    split = options.get("split", "test")
    eval_options = EvaluationOptions(bootstrap=int(options.get("bootstrap", 1000)))
    out = Path(options.get("out") or tempfile.mkdtemp(prefix="bench-evaluate-"))
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    dataset = load_dataset(data)
    loaded_at = time.perf_counter()
    cache = EmbeddingCache()
    cache_state = _embedding_cache_state(cache, root / names[0], dataset.split(split))
    eval_started = time.perf_counter()
    report = evaluate([root / n for n in names], dataset, split, eval_options, embedding_cache=cache)
    evaluated_at = time.perf_counter()
    json_path = out / "evaluation.json"
    json_path.write_text(json.dumps(report.to_json()), encoding="utf-8")
    json_at = time.perf_counter()
    html_path = write_html_report(report, out / "report.html")
    finished = time.perf_counter()

    total = (finished - started) - (eval_started - loaded_at)  # the cache probe is not part of the job
    return {
        "section": "evaluate",
        "device": describe_device(pick_device()),
        "versions": library_versions(),
        "checkpoints": names,
        "split": split,
        "rows": len(dataset.split(split)),
        "bootstrap": eval_options.bootstrap,
        "evaluation_cache": "disabled",
        "embedding_cache": cache_state,
        "timings_s": {
            "load_dataset": round(loaded_at - started, 3),
            "evaluate": round(evaluated_at - eval_started, 3),
            "write_json": round(json_at - evaluated_at, 3),
            "write_html": round(finished - json_at, 3),
            "total": round(total, 3),
            "per_checkpoint": {r.name: round(r.seconds, 3) for r in report.checkpoints},
        },
        "target_seconds": TARGET_SECONDS,
        "within_target": total < TARGET_SECONDS,
        "outputs": {"json": str(json_path), "html": str(html_path), "html_bytes": html_path.stat().st_size},
        "analysis": {
            r.name: {
                "interaction_share": r.analysis.emap.interaction_share if r.analysis.emap else None,
                "ground_truth": r.analysis.ground_truth.to_json() if r.analysis.ground_truth else None,
                "worst_slices": [f.label for f in r.analysis.worst_slices],
            }
            for r in report.checkpoints
            if r.analysis is not None
        },
        "verdict": report.verdict.sentences if report.verdict else [],
    }
