"""Resuming an interrupted run, and torchrun (DDP, gloo) matching single-process training."""

import json
import os
import subprocess
import sys

import pytest

from core.card import list_checkpoints, read_card
from core.checkpoints import load_checkpoint
from core.settings import PROJECT_ROOT
from core.train import TrainConfig, Trainer

CONFIG = TrainConfig(encoder_epochs=3, fusion_epochs=4, patience=10, batch_size=32, seed=0)


class _Interrupt(Exception):
    pass


def _stop_at(model: str, epoch: int):
    def callback(event):
        if event.get("event") == "epoch" and event["model"] == model and event["epoch"] == epoch:
            raise _Interrupt

    return callback


def test_resume_continues_and_matches_uninterrupted(small_demo, tmp_path):
    reference = Trainer(small_demo, tmp_path / "ref", CONFIG, show_progress=False).run(["gated"])[0]

    out = tmp_path / "resumed"
    with pytest.raises(_Interrupt):
        Trainer(small_demo, out, CONFIG, show_progress=False, callback=_stop_at("gated", 3)).run(["gated"])
    # The baselines finished; the interrupted fusion left only its hidden training state.
    assert sorted(i.name for i in list_checkpoints(out)) == ["audio-only", "image-only", "text-only"]
    assert (out / ".state" / "gated" / "state.json").is_file()
    assert json.loads((out / ".state" / "gated" / "state.json").read_text())["epoch"] == 2

    events = []
    resumed = Trainer(small_demo, out, CONFIG, show_progress=False, resume=True, callback=events.append).run(["gated"])[0]
    epochs = [e["epoch"] for e in events if e["event"] == "epoch"]
    assert epochs == [3, 4], "continues after the last saved epoch, and does not retrain the encoders"
    assert not (out / ".state" / "gated").exists()
    assert read_card(resumed.path).sha256 == read_card(reference.path).sha256
    assert resumed.metrics == reference.metrics


def test_resume_skips_complete_checkpoints(small_demo, tmp_path):
    Trainer(small_demo, tmp_path, CONFIG, show_progress=False).run(["early"])
    events = []
    Trainer(small_demo, tmp_path, CONFIG, show_progress=False, resume=True, callback=events.append).run(["early"])
    assert not [e for e in events if e["event"] == "epoch"]
    assert {e["model"] for e in events if e["event"] == "skipped"} == {"early"}


@pytest.mark.slow
def test_torchrun_two_gloo_ranks_match_single_process(small_demo, tmp_path):
    common = [
        "--data", str(small_demo.root), "--fusion", "early", "--encoder-epochs", "2", "--epochs", "3",
        "--batch-size", "32", "--dropout", "0", "--quiet", "--no-cache",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    single = subprocess.run(
        [sys.executable, "-m", "core", "train", *common, "--out", str(tmp_path / "one")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "core", "train", *common, "--out", str(tmp_path / "two")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    for name in ("image-only", "early"):
        one, two = read_card(tmp_path / "one" / name), read_card(tmp_path / "two" / name)
        assert two.training.world_size == 2
        losses_one = [h["train_loss"] for h in one.training.history]
        losses_two = [h["train_loss"] for h in two.training.history]
        assert losses_two == pytest.approx(losses_one, rel=0.05)
        assert two.metrics["test"]["accuracy"] == pytest.approx(one.metrics["test"]["accuracy"], abs=0.05)
    load_checkpoint(tmp_path / "two" / "early")  # rank 0 wrote complete checkpoints only once
    assert not list((tmp_path / "two").glob(".*tmp*"))
