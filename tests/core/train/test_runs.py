"""Background training runs: start, follow, fail visibly, cancel."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.train.runs import RunSpec, cancel_run, list_runs, read_run, start_run


def wait_until_ended(folder: Path, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_run(folder)
        if state.status != "running":
            return state
        time.sleep(0.5)
    raise TimeoutError(f"run {folder.name} still running after {timeout} s")


def test_command_carries_models_encoders_and_events(tmp_path):
    spec = RunSpec(data="d", out="o", models=("early", "text-only"), encoders={"text": "minilm"}, epochs=3, encoder_epochs=2)
    cmd = spec.command(tmp_path / "events.jsonl")
    assert cmd[1:4] == ["-m", "core", "train"]
    assert cmd[cmd.index("--fusion") + 1] == "early,text-only"
    assert cmd[cmd.index("--encoders") + 1] == "text=minilm"
    assert cmd[cmd.index("--events") + 1] == str(tmp_path / "events.jsonl")


def test_a_run_on_a_missing_dataset_fails_with_its_log(tmp_path):
    spec = RunSpec(data=str(tmp_path / "nowhere"), out=str(tmp_path / "ckpt"), models=("early",))
    run = start_run(spec, tmp_path / "runs")
    assert run.status == "running"
    ended = wait_until_ended(run.path)
    assert ended.status == "failed"
    assert ended.exit_code == 2
    assert "error" in ended.log_tail.lower()
    assert json.loads((run.path / "run.json").read_text())["status"] == "failed"
    assert [r.id for r in list_runs(tmp_path / "runs")] == [run.id]


def test_a_run_can_be_cancelled(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [f"{label},{split},a {label} number {i}" for i in range(20) for label in ("cat", "dog") for split in ("train", "val", "test")]
    (data / "manifest.csv").write_text("label,split,text\n" + "\n".join(rows) + "\n")
    run = start_run(RunSpec(data=str(data), out=str(tmp_path / "ckpt"), models=("text-only",), encoder_epochs=500), tmp_path / "runs")
    cancelled = cancel_run(run.path)
    assert cancelled.status == "cancelled"
    deadline = time.monotonic() + 30
    while read_run(run.path).exit_code is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert read_run(run.path).exit_code is not None  # the process really ended (and was reaped)
    assert read_run(run.path).status == "cancelled"
