"""Background training runs: queue, start, follow, fail visibly, cancel; confined, owned, refused when read-only."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from core.errors import AccessError
from core.job_queue import JobQueue
from core.roots import NOT_OFFERED
from core.train.runs import RunSpec, cancel_run, create_run, list_runs, read_run, run_when_admitted, start_run


@pytest.fixture
def roots(tmp_path, monkeypatch) -> Path:
    """``tmp_path/data`` and ``tmp_path/ckpt`` are this server's roots; runs go to ``tmp_path/runs``."""
    monkeypatch.setenv("FUSION_DATA_ROOTS", str(tmp_path / "data"))
    monkeypatch.setenv("FUSION_CHECKPOINT_ROOTS", str(tmp_path / "ckpt"))
    monkeypatch.setenv("FUSION_RUNS", str(tmp_path / "runs"))
    (tmp_path / "data").mkdir()
    return tmp_path


def text_dataset(folder: Path, rows: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{label},{split},a {label} number {i}" for i in range(rows) for label in ("cat", "dog") for split in ("train", "val", "test")]
    (folder / "manifest.csv").write_text("label,split,text\n" + "\n".join(lines) + "\n")
    return folder


def wait_until_ended(folder: Path, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_run(folder)
        if state.status not in ("queued", "running"):
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


def test_a_run_on_a_missing_dataset_fails_with_its_log(roots):
    spec = RunSpec(data=str(roots / "data" / "nowhere"), out=str(roots / "ckpt"), models=("early",))
    run = start_run(spec, roots / "runs")
    assert run.status == "running" and run.owner == "local"
    ended = wait_until_ended(run.path)
    assert ended.status == "failed"
    assert ended.exit_code == 2
    assert "error" in ended.log_tail.lower()
    assert json.loads((run.path / "run.json").read_text())["status"] == "failed"
    assert [r.id for r in list_runs(roots / "runs")] == [run.id]


def test_a_run_can_be_cancelled(roots):
    data = text_dataset(roots / "data" / "pets")
    run = start_run(RunSpec(data=str(data), out=str(roots / "ckpt"), models=("text-only",), encoder_epochs=500), roots / "runs")
    cancelled = cancel_run(run.path)
    assert cancelled.status == "cancelled"
    deadline = time.monotonic() + 30
    while read_run(run.path).exit_code is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert read_run(run.path).exit_code is not None  # the process really ended (and was reaped)
    assert read_run(run.path).status == "cancelled"


@pytest.mark.parametrize(
    "change",
    [
        {"out": "/tmp/elsewhere"},
        {"out": "{root}/ckpt/../outside"},
        {"out": "{root}/ckpt/link-out"},
        {"data": "/etc"},
        {"data": "../.."},
        {"encoders": {"text": "hf:/etc"}},
        {"encoders": {"text": "hf:../outside"}},
    ],
)
def test_a_run_that_would_read_or_write_outside_the_roots_is_refused(roots, change):
    (roots / "outside").mkdir()
    (roots / "ckpt").mkdir()
    (roots / "ckpt" / "link-out").symlink_to(roots / "outside", target_is_directory=True)
    spec = {"data": str(text_dataset(roots / "data" / "pets")), "out": str(roots / "ckpt"), "models": ("early",)}
    spec.update({k: v.format(root=roots) if isinstance(v, str) else v for k, v in change.items()})
    with pytest.raises(AccessError) as refused:
        create_run(RunSpec(**spec), roots / "runs")
    assert str(refused.value) == NOT_OFFERED
    assert not (roots / "runs").exists()


def test_read_only_mode_starts_no_run(roots, monkeypatch):
    spec = RunSpec(data=str(text_dataset(roots / "data" / "pets")), out=str(roots / "ckpt"), models=("early",))
    queued = create_run(spec, roots / "runs")
    monkeypatch.setenv("FUSION_READ_ONLY", "1")
    with pytest.raises(AccessError, match="read-only"):
        start_run(spec, roots / "runs")
    with pytest.raises(AccessError, match="read-only"):  # a run queued before the switch does not start either
        run_when_admitted(queued.path, JobQueue(1), poll=0.05)
    assert read_run(queued.path).status == "queued" and read_run(queued.path).pid is None


def test_with_an_owner_runs_are_listed_and_cancelled_only_by_their_owner(roots):
    spec = RunSpec(data=str(roots / "data" / "x"), out=str(roots / "ckpt"), models=("early",))
    alice = create_run(spec, roots / "runs", owner="alice@example.com")
    time.sleep(1.1)  # run ids are time-stamped to the second
    bob = create_run(spec, roots / "runs", owner="bob@example.org")
    assert [r.id for r in list_runs(roots / "runs", owner="alice@example.com")] == [alice.id]
    assert [r.id for r in list_runs(roots / "runs")] == [bob.id, alice.id]  # no owner: everyone's (sign-in off)
    with pytest.raises(AccessError) as refused:
        cancel_run(alice.path, owner="bob@example.org")
    assert str(refused.value) == NOT_OFFERED
    assert read_run(alice.path).status == "queued"
    assert cancel_run(alice.path, owner="alice@example.com").status == "cancelled"
    assert cancel_run(bob.path).status == "cancelled"  # the CLI / sign-in off: no owner check


def test_a_queued_run_waits_for_a_slot_and_a_cancelled_one_never_starts(roots):
    queue = JobQueue(capacity=1)
    busy = queue.join("explain", "someone")
    spec = RunSpec(data=str(roots / "data" / "missing"), out=str(roots / "ckpt"), models=("early",))
    first, second = create_run(spec, roots / "runs"), create_run(spec, roots / "runs")
    results = {}
    threads = [
        threading.Thread(target=lambda r=r: results.setdefault(r.id, run_when_admitted(r.path, queue, poll=0.05)))
        for r in (first, second)
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.2)  # keep their order in line
    assert [t.label for t in queue.waiting()] == [first.id, second.id]
    assert read_run(first.path).status == "queued"
    cancel_run(second.path)
    queue.leave(busy)
    for thread in threads:
        thread.join(120)
    assert results[first.id].status == "failed"  # started once admitted (and failed: no dataset)
    assert results[second.id].status == "cancelled" and read_run(second.path).pid is None
    assert queue.running() == [] and queue.waiting() == []
