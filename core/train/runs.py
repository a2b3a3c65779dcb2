"""Training runs in the background: queue, start, list, read progress, cancel.

A run is ``python -m core train ... --events <run>/events.jsonl`` started as its own
process session, so it outlives the page, the browser tab and even the dashboard
server. Everything about a run lives in its folder ``runs/<run-id>/``:

- ``run.json``: the arguments, owner, pid, status and timestamps (written atomically);
- ``events.jsonl``: progress events of :class:`core.train.Trainer` (:mod:`core.train.events`);
- ``log.txt``: the process's stdout and stderr.

A run is created ``queued`` (:func:`create_run`), which is where the server's rules are
enforced: not in read-only mode, the dataset inside a data root, the checkpoints written
inside a checkpoint root (:mod:`core.roots`). :func:`run_when_admitted` starts it once the
server's :class:`~core.job_queue.JobQueue` has a free slot; :func:`start_run` starts it at
once. Every run records its owner; given an owner, :func:`list_runs` lists only that owner's
runs and :func:`cancel_run` refuses anyone else's.

The dashboard's Train page renders :class:`RunState` objects read from these files;
nothing here knows about Streamlit.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from core.atomic import pid_alive, write_text_atomic
from core.errors import AccessError, TrainingError
from core.job_queue import JobQueue, Ticket
from core.roots import NOT_OFFERED, checkpoint_folder, dataset_folder, require_writable, resolve_inside
from core.settings import LOCAL_USER, PROJECT_ROOT, Settings, settings
from core.train.events import read_events

RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "log.txt"


@dataclass(frozen=True)
class RunSpec:
    """What to train.

    Args:
        data: dataset folder.
        out: checkpoint folder the run writes into.
        models: fusion names and ``<modality>-only`` baselines (see :func:`core.train.parse_model_names`).
        encoders: modality -> encoder choice (``builtin``, a pretrained name, ``hf:<name-or-dir>``).
        epochs: max epochs of each fusion head.
        encoder_epochs: max epochs of each built-in encoder.
        tasks: the dataset's tasks to learn (empty: all of them).
        task_weighting: ``fixed`` or ``uncertainty`` (see :mod:`core.train.loss`).
        augment: modalities whose built-in encoder trains on augmented inputs (every transform).
        class_weights: ``none`` or ``auto``; balanced_sampler: class-balanced epochs.
        skip_invalid: train on the valid rows of a dataset whose other rows have problems.
    """

    data: str
    out: str
    models: tuple[str, ...]
    encoders: dict[str, str] = field(default_factory=dict)
    epochs: int = 60
    encoder_epochs: int = 30
    tasks: tuple[str, ...] = ()
    task_weighting: str = "fixed"
    augment: tuple[str, ...] = ()
    class_weights: str = "none"
    balanced_sampler: bool = False
    skip_invalid: bool = False
    kind: ClassVar[str] = "train"

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> RunSpec:
        lists = ("models", "tasks", "augment")
        return cls(**{**spec, **{key: tuple(spec.get(key, ())) for key in lists}})

    def checked(self, config: Settings) -> RunSpec:
        """This spec with its folders resolved, if they are inside the roots (and so is an ``hf:``
        encoder directory).

        Raises:
            AccessError: with :data:`core.roots.NOT_OFFERED`.
        """
        for choice in self.encoders.values():
            name = choice.removeprefix("hf:") if choice.startswith("hf:") else None
            # A hub id (``org/name``) is looked up in the local cache; anything path-like is a
            # directory on this server and must be inside a root like every other path.
            if name is not None and (Path(name).expanduser().is_absolute() or name.startswith((".", "~")) or "\\" in name):
                resolve_inside(name, (*config.data_roots, *config.checkpoint_roots))
        return replace(self, data=str(dataset_folder(self.data, config)), out=str(checkpoint_folder(self.out, config)))

    def command(self, events: Path) -> list[str]:
        """The ``python -m core train`` command line of this spec."""
        if not self.models:
            raise TrainingError("Choose at least one strategy or baseline to train.")
        cmd = [
            sys.executable, "-m", "core", "train",
            "--data", self.data,
            "--out", self.out,
            "--fusion", ",".join(self.models),
            "--epochs", str(self.epochs),
            "--encoder-epochs", str(self.encoder_epochs),
            "--events", str(events),
            "--quiet",
        ]
        encoders = ",".join(f"{m}={c}" for m, c in sorted(self.encoders.items()) if c)
        if encoders:
            cmd += ["--encoders", encoders]
        if self.tasks:
            cmd += ["--tasks", ",".join(self.tasks)]
        if self.task_weighting != "fixed":
            cmd += ["--task-weighting", self.task_weighting]
        if self.augment:
            cmd += ["--augment", ",".join(self.augment)]
        if self.class_weights != "none":
            cmd += ["--class-weights", self.class_weights]
        if self.balanced_sampler:
            cmd += ["--balanced-sampler"]
        if self.skip_invalid:
            cmd += ["--skip-invalid"]
        return cmd


@dataclass
class RunState:
    """A run as read from its folder.

    Attributes:
        id, path: run id and folder.
        spec: what it trains.
        pid: process id of the training process (``None`` while queued).
        status: ``queued``, ``running``, ``finished``, ``failed`` or ``cancelled``.
        started_at, ended_at: ISO timestamps (``ended_at`` None while running).
        exit_code: of the process when known.
        events: every event written so far, in order.
        stage: the latest ``stage`` event's text.
        saved: names of checkpoints written so far.
        log_tail: the last lines of ``log.txt`` (shown when a run failed).
        owner: who started it (a signed-in e-mail, or ``local``).
    """

    id: str
    path: Path
    spec: RunSpec
    pid: int | None
    status: str
    started_at: str
    ended_at: str | None
    exit_code: int | None
    events: list[dict[str, Any]]
    stage: str
    saved: list[str]
    log_tail: str
    owner: str = LOCAL_USER

    @property
    def progress(self) -> float:
        """Fraction done: finished models plus the running model's share of its epochs."""
        if self.status == "finished":
            return 1.0
        total = max(len(self.spec.models), 1)
        current = 0.0
        for event in reversed(self.events):
            if event.get("event") == "epoch" and event.get("model") not in self.saved:
                current = event.get("epoch", 0) / max(event.get("epochs", 1), 1)
                break
        return min((len(self.saved_requested) + current) / total, 1.0)

    @property
    def saved_requested(self) -> list[str]:
        """The requested models saved so far (training also saves the baselines of the
        encoders it trains, which were not necessarily asked for)."""
        return [name for name in self.saved if name in self.spec.models]

    def epochs(self) -> list[dict[str, Any]]:
        """Every ``epoch`` event (model, epoch, train_loss, val_loss, val_accuracy)."""
        return [e for e in self.events if e.get("event") == "epoch"]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2))


def _checked_spec(spec: RunSpec) -> RunSpec:
    """``spec`` with its folders resolved, if this server may do it (a training or a compression,
    each checking its own folders: :meth:`RunSpec.checked`, ``CompressSpec.checked``).

    Raises:
        AccessError: read-only mode, or a folder outside the roots (:data:`core.roots.NOT_OFFERED`).
    """
    require_writable()
    return spec.checked(settings())


def create_run(spec: RunSpec, runs_dir: str | Path | None = None, owner: str = LOCAL_USER) -> RunState:
    """Record a ``queued`` run of ``spec`` for ``owner``; :func:`launch_run` starts it.

    Raises:
        AccessError: see :func:`_checked_spec`; nothing is written then.
        TrainingError: no model to train.
    """
    spec = _checked_spec(spec)
    if not spec.models:
        raise TrainingError("Choose at least one strategy or baseline to train.")
    root = Path(runs_dir) if runs_dir is not None else settings().runs_dir
    run_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    folder = root / run_id
    folder.mkdir(parents=True)
    _write_json_atomic(
        folder / RUN_FILE,
        {
            "id": run_id,
            "owner": owner,
            "kind": spec.kind,
            "spec": json.loads(json.dumps(asdict(spec))),
            "command": spec.command(folder / EVENTS_FILE),
            "pid": None,
            "status": "queued",
            "queued_at": _now(),
            "started_at": None,
            "ended_at": None,
            "exit_code": None,
        },
    )
    return read_run(folder)


def launch_run(folder: str | Path) -> RunState:
    """Start the training process of a ``queued`` run (a run cancelled meanwhile stays as it is).

    The process gets its own session so a cancel can stop it and all its children,
    and so closing the dashboard does not kill it.
    """
    folder = Path(folder)
    info = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    if info["status"] != "queued":
        return read_run(folder)
    require_writable()
    with open(folder / LOG_FILE, "wb") as log:
        process = subprocess.Popen(
            info["command"],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # A cancel that landed while the process was starting wins: the process is stopped.
    if json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))["status"] == "cancelled":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        info["status"] = "cancelled"
    else:
        info["status"] = "running"
    info.update(pid=process.pid, started_at=_now())
    _write_json_atomic(folder / RUN_FILE, info)
    return read_run(folder)


def start_run(spec: RunSpec, runs_dir: str | Path | None = None, owner: str = LOCAL_USER) -> RunState:
    """Start training ``spec`` in a background process now and return its state (see :func:`create_run`)."""
    return launch_run(create_run(spec, runs_dir, owner).path)


def run_when_admitted(folder: str | Path, queue: JobQueue, ticket: Ticket | None = None, poll: float = 1.0) -> RunState:
    """Wait for a slot in ``queue``, start the queued run, and hold the slot until it ends.

    Blocks (a server calls it in a thread). ``ticket`` is the run's place in line when the
    caller joined already (to keep several runs in order); by default it joins now. A run
    cancelled while it waits leaves the line without starting; a run already running
    (adopted after a server restart) just holds a slot until its process ends.
    """
    folder = Path(folder)
    state = read_run(folder)
    if ticket is None:
        ticket = queue.join("train", state.owner, state.id)
    try:
        while not queue.wait(ticket, timeout=poll):
            state = read_run(folder)
            if state.status not in ("queued", "running"):
                return state
        state = launch_run(folder)
        while state.status == "running":
            time.sleep(poll)
            state = read_run(folder)
        return state
    finally:
        queue.leave(ticket)


def _exit_code(pid: int) -> int | None:
    """The exit code if ``pid`` has ended, ``None`` while it runs.

    A child of this process must be reaped (``waitpid``), or it stays a zombie that
    looks alive; a process started by an earlier server is not our child, and once it
    ends it is simply gone (its exit code is then unknown: -1).
    """
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if pid_alive(pid) else -1
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def _tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 16_000))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def read_run(folder: str | Path) -> RunState:
    """Read a run folder, settling a ``running`` status whose process has ended."""
    folder = Path(folder)
    info = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    events = read_events(folder / EVENTS_FILE)
    if info["status"] in ("running", "cancelled") and info.get("exit_code") is None and info.get("pid"):
        code = _exit_code(info["pid"])
        if code is not None:
            info["exit_code"] = code
            if info["status"] == "running":
                finished = any(e.get("event") == "done" for e in events)
                info.update(status="finished" if finished else "failed", ended_at=_now())
            _write_json_atomic(folder / RUN_FILE, info)
    spec = info["spec"]
    stages = [e["stage"] for e in events if e.get("event") == "stage"]
    return RunState(
        id=info["id"],
        path=folder,
        spec=spec_class(info.get("kind", "train")).from_json(spec),
        pid=info.get("pid"),
        status=info["status"],
        started_at=info.get("started_at") or info.get("queued_at") or "",
        ended_at=info.get("ended_at"),
        exit_code=info.get("exit_code"),
        events=events,
        stage=stages[-1] if stages else "starting",
        saved=[e["model"] for e in events if e.get("event") == "saved"],
        log_tail=_tail(folder / LOG_FILE),
        owner=info.get("owner", LOCAL_USER),
    )


def spec_class(kind: str) -> type:
    """The spec class of a run's ``kind``: ``train`` (:class:`RunSpec`) or ``compress``."""
    if kind == "compress":
        from core.compress.runs import CompressSpec

        return CompressSpec
    return RunSpec


def list_runs(runs_dir: str | Path | None = None, owner: str | None = None) -> list[RunState]:
    """Every run under ``runs_dir`` (only ``owner``'s when given), newest first; unreadable folders are skipped."""
    root = Path(runs_dir) if runs_dir is not None else settings().runs_dir
    if not root.is_dir():
        return []
    runs = []
    for folder in sorted((p for p in root.iterdir() if (p / RUN_FILE).is_file()), reverse=True):
        try:
            run = read_run(folder)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if owner is None or run.owner == owner:
            runs.append(run)
    return runs


def cancel_run(folder: str | Path, owner: str | None = None) -> RunState:
    """Stop a queued or running run (its whole process group) and mark it ``cancelled``.

    Raises:
        AccessError: ``owner`` is given and the run is someone else's (the message is the
            same as for a run that does not exist).
    """
    folder = Path(folder)
    state = read_run(folder)
    if owner is not None and state.owner != owner:
        raise AccessError(NOT_OFFERED)
    if state.status not in ("queued", "running"):
        return state
    if state.pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # it may have just ended
            os.killpg(state.pid, signal.SIGTERM)
    info = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    info.update(status="cancelled", ended_at=_now())
    _write_json_atomic(folder / RUN_FILE, info)
    return read_run(folder)
