"""Explain every sample of a dataset split, sharded across torchrun ranks.

Rank r of W explains records r, r+W, r+2W... and writes them, one JSON object per
line, to ``shard-rrrr-of-WWWW.jsonl`` in the output folder (atomically, when the
shard is complete). After a barrier, rank 0 writes ``index.json``: which shard and
line holds each sample, plus a summary (per-modality mean Shapley credit, runtime).
Without torchrun this is one rank writing one shard.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import distributed
from core.atomic import write_text_atomic
from core.checkpoints import LoadedCheckpoint
from core.data import Dataset, load_sample
from core.errors import InputError
from core.explain.params import ExplainParams
from core.explain.run import explain


def shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:04d}-of-{world:04d}.jsonl"


def explain_split(
    loaded: LoadedCheckpoint,
    dataset: Dataset,
    out_dir: str | Path,
    *,
    split: str = "test",
    method: str = "modality",
    params: ExplainParams | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Explain this rank's share of ``split``; returns the shard path (rank 0: after writing the index).

    A sample that cannot be decoded is recorded with its error instead of stopping the run.
    """
    ctx = distributed.context()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = dataset.split(split)[:limit] if limit else dataset.split(split)
    mine = records[ctx.rank :: ctx.world]
    shard = out / shard_name(ctx.rank, ctx.world)
    tmp = shard.with_name(f".{shard.name}.tmp-{os.getpid()}")
    started = time.perf_counter()
    with open(tmp, "w", encoding="utf-8") as fh:
        for i, record in enumerate(mine):
            line: dict[str, Any] = {"id": record.id, "label": record.label, "extras": record.extras}
            try:
                results = explain(loaded, load_sample(record, dataset.limits), method, params=params)
                line["explanations"] = {name: r.to_json() for name, r in results.items()}
            except InputError as err:
                line["error"] = str(err)
            fh.write(json.dumps(line) + "\n")
            if progress is not None:
                progress(i + 1, len(mine))
    os.replace(tmp, shard)
    seconds = time.perf_counter() - started
    stats = distributed.all_gather_objects(
        {"rank": ctx.rank, "shard": shard.name, "ids": [r.id for r in mine], "seconds": seconds}
    )
    if ctx.is_main:
        _write_index(out, stats, loaded, split, method, len(records))
    distributed.barrier()
    return shard


def _write_index(
    out: Path, stats: list[dict[str, Any]], loaded: LoadedCheckpoint, split: str, method: str, n: int
) -> None:
    entries: dict[str, dict[str, Any]] = {}
    credit: dict[str, list[float]] = {}
    errors = 0
    for part in stats:
        with open(out / part["shard"], encoding="utf-8") as fh:
            for line_no, line in enumerate(fh):
                row = json.loads(line)
                entries[row["id"]] = {"shard": part["shard"], "line": line_no}
                if "error" in row:
                    errors += 1
                    continue
                modality = row["explanations"].get("modality")
                for m, v in (modality or {}).get("modality_totals", {}).items():
                    credit.setdefault(m, []).append(v)
    index = {
        "checkpoint": {"name": loaded.name, "sha256": loaded.card.sha256},
        "split": split,
        "method": method,
        "samples": n,
        "errors": errors,
        "world_size": len(stats),
        "shards": [
            {"file": p["shard"], "rank": p["rank"], "samples": len(p["ids"]), "seconds": round(p["seconds"], 3)}
            for p in stats
        ],
        "mean_modality_credit": {m: sum(v) / len(v) for m, v in sorted(credit.items())},
        "samples_index": entries,
    }
    write_text_atomic(out / "index.json", json.dumps(index, indent=1))
