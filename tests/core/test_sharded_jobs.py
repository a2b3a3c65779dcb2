"""Batch jobs under torchrun: each rank takes every N-th shard of the rows, and the ranks end
with what one process computes (embedding a dataset, evaluating a split)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core import distributed
from core.settings import PROJECT_ROOT


@pytest.mark.parametrize(("n", "world", "size"), [(10, 2, 512), (1000, 2, 64), (1001, 3, 100), (1, 4, 512), (0, 2, 512)])
def test_ranks_take_every_nth_shard_and_together_every_row_once(monkeypatch, n, world, size):
    taken = []
    for rank in range(world):
        monkeypatch.setattr(distributed, "context", lambda rank=rank: distributed.DistContext(rank, world))
        taken.append(distributed.my_rows(n, size))
    assert sorted(i for rows in taken for i in rows) == list(range(n))
    for rows in taken:
        assert rows == sorted(rows)
    if n >= world:
        assert all(taken), "every rank gets work when there is enough"
    if n == 1000:  # shard k of 64 rows goes to rank k % 2
        assert taken[0][:64] == list(range(64)) and taken[1][:64] == list(range(64, 128))


def _run(args: list[str], ranks: int) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] if ranks > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "FUSION_WORKERS": "0"}
    done = subprocess.run(
        [sys.executable, *launcher, "-m", "core", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_embedding_a_dataset_on_two_gloo_ranks_matches_one_process(small_demo, small_checkpoints, tmp_path):
    common = ["embed", "--checkpoint", str(small_checkpoints["early"]), "--data", str(small_demo.root), "--no-cache"]
    one = _run([*common, "--out", str(tmp_path / "one.npz")], 1)
    two = _run([*common, "--out", str(tmp_path / "two.npz")], 2)
    assert "on 1 rank(s)" in one.stdout and "on 2 rank(s)" in two.stdout
    a, b = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert list(a["ids"]) == list(b["ids"]) == [r.id for r in small_demo.records]
    assert np.array_equal(a["present"], b["present"])
    for m in a["modalities"]:
        assert np.abs(a[f"embedding_{m}"]).sum() > 0
        np.testing.assert_allclose(b[f"embedding_{m}"], a[f"embedding_{m}"], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_evaluating_a_split_on_two_gloo_ranks_matches_one_process(small_demo, small_checkpoints, tmp_path):
    common = [
        "evaluate", "--checkpoint", str(small_checkpoints["early"]), "--checkpoint", str(small_checkpoints["late"]),
        "--data", str(small_demo.root), "--bootstrap", "50", "--no-slices", "--no-cache",
    ]  # fmt: skip
    _run([*common, "--json", str(tmp_path / "one.json")], 1)
    _run([*common, "--json", str(tmp_path / "two.json")], 2)

    def results(path):
        report = json.loads(path.read_text())
        return [
            {k: v for k, v in r.items() if k not in ("seconds", "cost")} for r in report["checkpoints"]
        ]  # wall-clock times differ

    one, two = results(tmp_path / "one.json"), results(tmp_path / "two.json")
    assert [r["name"] for r in two] == ["early", "late"]
    assert two[0]["corruptions"], "the robustness sweeps ran (sharded)"
    assert json.dumps(two, sort_keys=True) == json.dumps(one, sort_keys=True)
