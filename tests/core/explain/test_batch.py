"""Batch explanation of a split: one shard per rank plus a merged index."""

import json
import os
import subprocess
import sys

import pytest

from core.checkpoints import load_checkpoint
from core.explain.batch import explain_split, shard_name
from core.settings import PROJECT_ROOT


def test_single_process_writes_one_shard_and_index(small_demo, small_checkpoints, tmp_path):
    loaded = load_checkpoint(small_checkpoints["early"])
    shard = explain_split(loaded, small_demo, tmp_path, split="test", method="modality", limit=7)
    assert shard.name == shard_name(0, 1)
    lines = [json.loads(line) for line in shard.read_text().splitlines()]
    assert [row["id"] for row in lines] == [r.id for r in small_demo.split("test")[:7]]
    for row in lines:
        totals = row["explanations"]["modality"]["modality_totals"]
        assert set(totals) <= {"audio", "image", "text"}
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["samples"] == 7 and index["errors"] == 0 and index["world_size"] == 1
    assert index["samples_index"][lines[3]["id"]] == {"shard": shard.name, "line": 3}
    assert set(index["mean_modality_credit"]) <= {"audio", "image", "text"}
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.slow
def test_torchrun_two_ranks_shard_the_split(small_demo, small_checkpoints, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = tmp_path / "explained"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "core", "explain", "--checkpoint", str(small_checkpoints["early"]), "--data", str(small_demo.root),
         "--split", "test", "--method", "modality", "--out", str(out), "--limit", "9"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    shards = sorted(p.name for p in out.glob("shard-*.jsonl"))
    assert shards == [shard_name(0, 2), shard_name(1, 2)]
    ids = [json.loads(line)["id"] for name in shards for line in (out / name).read_text().splitlines()]
    expected = [r.id for r in small_demo.split("test")[:9]]
    assert sorted(ids) == sorted(expected) and len(ids) == 9  # every sample exactly once
    index = json.loads((out / "index.json").read_text())
    assert index["world_size"] == 2 and set(index["samples_index"]) == set(expected)
