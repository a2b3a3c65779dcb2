"""``python -m bench reliability``: hostile inputs, fuzzing, concurrent users and crash safety.

The report lists, for every case of :mod:`bench.hostile_inputs`, how the CLI code
path (``core.cli.main(["predict", ...])`` in-process) answered it; how many fuzzed inputs the
decoders saw and how many raised anything but an :class:`~core.errors.InputError` (must be 0);
whether 8 threads sharing one loaded model get the sequential results; and what a training
run killed with SIGKILL left on disk (complete checkpoints only), and whether ``--resume``
finishes it. The same helpers back ``tests/core/test_crash_resume.py`` and
``tests/core/test_concurrency.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.hostile_inputs import HOSTILE_INPUTS, HostileInput, cli_text_argument, mutate, seed_files
from core.errors import InputError
from core.inference import predict_proba
from core.io import decode_audio, decode_image, decode_text
from core.settings import PROJECT_ROOT, Limits

TINY_TRAINING = ["--encoder-epochs", "2", "--epochs", "4", "--batch-size", "32", "--quiet"]
"""A training run of a few seconds on the small demo: long enough to be killed mid-way."""


# ----------------------------------------------------------------------------- bad inputs
@contextlib.contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``variables`` set, restored afterwards (the CLI reads limits from it)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cli_predict(case: HostileInput, checkpoint: Path, folder: Path) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``python -m core predict`` on ``case``, run in-process."""
    from core.cli import main

    if case.modality == "text":
        arguments = ["--text", cli_text_argument(case)]
    else:
        path = folder / case.filename
        path.write_bytes(case.payload())  # type: ignore[arg-type]
        arguments = [f"--{case.modality}", str(path)]
    out, err = io.StringIO(), io.StringIO()
    with environment(case.env()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["predict", "--checkpoint", str(checkpoint), *arguments])
    return code, out.getvalue(), err.getvalue()


def bad_input_catalogue(checkpoint: Path, folder: Path) -> list[dict[str, Any]]:
    """Every CLI-capable catalogue case through the CLI code path; ``ok`` says it got its catalogued answer."""
    rows = []
    for case in HOSTILE_INPUTS:
        try:
            case.decode()
            raised: BaseException | None = None
        except Exception as err:  # recorded, not raised: an unexpected type is the finding
            raised = err
        row: dict[str, Any] = {
            "case": case.name,
            "modality": case.modality,
            "input": case.description,
            "expected": case.expected.__name__ if case.expected else "accepted",
            "handled_as": type(raised).__name__ if raised is not None else "accepted",
            "message": str(raised) if raised is not None else "",
        }
        ok = row["handled_as"] == row["expected"] and (
            raised is None or re.search(case.message, str(raised)) is not None
        )
        if case.cli:
            code, out, err = cli_predict(case, checkpoint, folder)
            row["cli_exit_code"] = code
            row["cli_output"] = (err or out).strip().splitlines()[-1] if (err or out).strip() else ""
            ok = ok and (code == 0 if case.expected is None else code == 2 and "Traceback" not in err)
        row["ok"] = bool(ok)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- fuzzing
_FUZZ_LIMITS = Limits(max_image_pixels=4_000_000, max_audio_seconds=30.0)
_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "image": lambda data: decode_image(data, _FUZZ_LIMITS),
    "audio": lambda data: decode_audio(data, _FUZZ_LIMITS),
    "text": lambda data: decode_text(data, _FUZZ_LIMITS),
}


def fuzz_decoders(iterations: int, seed: int = 0) -> dict[str, Any]:
    """Random bytes and mutated PNG/WAV/FLAC through every decoder; counts non-InputError exceptions."""
    rng = np.random.default_rng(seed)
    seeds = list(seed_files().values())
    unexpected: list[str] = []
    slowest = 0.0
    accepted = refused = 0
    for i in range(iterations):
        # Alternate structured mutations of real files with plain random bytes.
        data = mutate(seeds[int(rng.integers(len(seeds)))], rng) if i % 2 else rng.bytes(int(rng.integers(1, 600)))
        for name, decode in _DECODERS.items():
            start = time.perf_counter()
            try:
                decode(data)
                accepted += 1
            except InputError:
                refused += 1
            except Exception as err:  # the finding: anything but our typed errors
                unexpected.append(f"{name}: {type(err).__name__}: {err}"[:300])
            slowest = max(slowest, time.perf_counter() - start)
    return {
        "iterations": iterations,
        "decoder_calls": iterations * len(_DECODERS),
        "accepted": accepted,
        "refused_with_input_error": refused,
        "unexpected_exceptions": len(unexpected),
        "unexpected_examples": unexpected[:5],
        "slowest_call_s": round(slowest, 3),
    }


# ----------------------------------------------------------------------------- concurrency
@dataclass
class ConcurrencyResult:
    threads: int
    tasks: int
    identical: bool
    model_unchanged: bool
    hooks_added: int
    seconds_sequential: float
    seconds_concurrent: float
    mismatches: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def concurrent_users(loaded: Any, samples: list[Any], threads: int = 8) -> ConcurrencyResult:
    """Predictions, modality Shapley and small LIME runs on ``samples`` from ``threads`` threads
    sharing ``loaded``'s model, compared with the same work done sequentially."""
    from core.explain import ExplainParams, explain

    model = loaded.model
    lime = ExplainParams(
        image_segments=8,
        audio_time_segments=3,
        audio_freq_bands=2,
        lime_samples=24,
        batch_size=16,
        faithfulness_steps=2,
    )

    def task(index: int) -> dict[str, np.ndarray]:
        sample = samples[index % len(samples)]
        kind = index % 3
        if kind == 0:
            return {"proba": predict_proba(model, [sample])[0]}
        if kind == 1:
            result = explain(loaded, sample, "modality")["modality"]
            return {"proba": result.probabilities, "totals": np.array(list(result.modality_totals.values()))}
        result = explain(loaded, sample, "lime", params=lime)["lime"]
        scores = {f"segments/{m}": np.asarray(s) for m, s in sorted(result.segment_scores.items())}
        return {"proba": result.probabilities, **scores}

    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks_before = _hook_count(model)
    tasks = max(threads, 2 * threads)
    start = time.perf_counter()
    sequential = [task(i) for i in range(tasks)]
    seconds_sequential = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        concurrent = list(pool.map(task, range(tasks)))
    seconds_concurrent = time.perf_counter() - start
    mismatches = [
        f"task {i} {key}"
        for i, (seq, con) in enumerate(zip(sequential, concurrent, strict=True))
        for key in seq
        if key not in con or not np.allclose(seq[key], con[key], atol=1e-6, rtol=0)
    ]
    after = model.state_dict()
    unchanged = before.keys() == after.keys() and all(torch.equal(v, after[k]) for k, v in before.items())
    return ConcurrencyResult(
        threads=threads,
        tasks=tasks,
        identical=not mismatches,
        model_unchanged=unchanged and not model.training,
        hooks_added=_hook_count(model) - hooks_before,
        seconds_sequential=round(seconds_sequential, 2),
        seconds_concurrent=round(seconds_concurrent, 2),
        mismatches=mismatches[:10],
    )


# ----------------------------------------------------------------------------- crash safety
def checkpoint_folder_problems(out: Path) -> list[str]:
    """Why ``out`` is not "complete checkpoints only": every visible entry must be a folder
    holding exactly ``card.json`` + ``model.safetensors`` that loads; hidden entries (temporary
    folders, training state) are the writer's business and are ignored."""
    from core.checkpoints import CARD_FILE, WEIGHTS_FILE, CheckpointError, load_checkpoint

    problems = []
    if not out.exists():
        return problems
    for entry in sorted(out.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            problems.append(f"{entry.name}: a loose file outside any checkpoint")
            continue
        files = sorted(p.name for p in entry.iterdir())
        if files != sorted([CARD_FILE, WEIGHTS_FILE]):
            problems.append(f"{entry.name}: holds {files}")
        try:
            load_checkpoint(entry)
        except CheckpointError as err:
            problems.append(f"{entry.name}: {err}")
    return problems


def cache_problems(cache_root: Path) -> list[str]:
    """Embedding-store shards that fail their digests (a torn write would be one)."""
    from core.encoders.cache import EmbeddingCache

    return EmbeddingCache(cache_root).verify()


def train_command(data: Path, out: Path, fusion: str = "early,late", *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "core",
        "train",
        "--data",
        str(data),
        "--fusion",
        fusion,
        "--out",
        str(out),
        *TINY_TRAINING,
        *extra,
    ]


@dataclass
class KilledRun:
    """What one SIGKILLed training run left behind."""

    kill_after_events: int
    delay_s: float
    killed: bool
    events_seen: int
    seconds: float
    checkpoints: list[str]
    problems: list[str]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def kill_training_run(
    data: Path,
    out: Path,
    workdir: Path,
    *,
    cache_root: Path,
    kill_after_events: int = 0,
    delay_s: float = 0.0,
    kill_on_save: bool = False,
    fusion: str = "early,late",
    resume: bool = False,
    timeout_s: float = 300.0,
) -> KilledRun:
    """Start ``python -m core train`` and SIGKILL it ``delay_s`` after its ``kill_after_events``-th
    progress event (stages, epochs, saves) or, with ``kill_on_save``, as soon as a checkpoint's
    temporary folder appears in ``out`` (mid-write); then inspect ``out`` and the embedding cache.
    A run that ends before the kill point is reported with ``killed=False``."""
    events = workdir / f"events-{time.monotonic_ns()}.jsonl"
    command = train_command(data, out, fusion, "--events", str(events), *(["--resume"] if resume else []))
    env = {**os.environ, "FUSION_CACHE_DIR": str(cache_root), "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    try:
        while process.poll() is None:
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"training did not reach the kill point in {timeout_s:.0f} s")
            if _saving(out) if kill_on_save else _count_lines(events) >= kill_after_events:
                time.sleep(delay_s)
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    killed = True
                break
            time.sleep(0.005)
    finally:
        if process.poll() is None and not killed:
            process.kill()
        process.wait()
    from core.card import list_checkpoints

    return KilledRun(
        kill_after_events=kill_after_events,
        delay_s=round(delay_s, 3),
        killed=killed,
        events_seen=_count_lines(events),
        seconds=round(time.monotonic() - start, 2),
        checkpoints=[info.name for info in list_checkpoints(out) if info.error is None],
        problems=checkpoint_folder_problems(out) + [f"cache: {p}" for p in cache_problems(cache_root)],
    )


def _saving(out: Path) -> bool:
    """Whether a checkpoint is being written: ``save_checkpoint`` fills ``.<name>.tmp-*`` first."""
    try:
        return any(entry.name.startswith(".") and ".tmp-" in entry.name for entry in out.iterdir())
    except FileNotFoundError:
        return False


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def resume_training(
    data: Path, out: Path, cache_root: Path, fusion: str = "early,late", timeout_s: float = 300.0
) -> subprocess.CompletedProcess:
    """Run ``python -m core train --resume`` on ``out`` to completion."""
    env = {**os.environ, "FUSION_CACHE_DIR": str(cache_root), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        train_command(data, out, fusion, "--resume"),
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def resume_is_available() -> bool:
    """Whether ``python -m core train`` has ``--resume`` (asked of the parser, no process started)."""
    from core.cli import build_parser

    _, unknown = build_parser().parse_known_args(["train", "--data", ".", "--resume"])
    return not unknown


def crash_test(data: Path, workdir: Path, kills: int, seed: int = 0) -> tuple[dict[str, Any], Path]:
    """``kills`` tiny training runs, each into its own folder and SIGKILLed at a seeded moment,
    then ``--resume`` of the last one. Returns the report and the folder resumed."""
    rng = np.random.default_rng(seed)
    cache_root = workdir / "embedding-cache"  # shared, so kills also land in cache writes
    runs, out = [], workdir
    for index in range(kills):
        out = workdir / f"run-{index}"
        # ~27 events in a tiny run: stages, encoder epochs, saves, fusion epochs.
        runs.append(
            kill_training_run(
                data, out, workdir, cache_root=cache_root, kill_after_events=int(rng.integers(1, 27)),
                delay_s=float(rng.uniform(0, 0.2)),
            )
        )  # fmt: skip
    report: dict[str, Any] = {
        "kills": sum(run.killed for run in runs),
        "runs": [run.to_json() for run in runs],
        "complete_checkpoints_only": all(not run.problems for run in runs),
    }
    if resume_is_available():
        finished = resume_training(data, out, cache_root)
        report["resume_exit_code"] = finished.returncode
        report["after_resume"] = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        report["after_resume_problems"] = checkpoint_folder_problems(out)
        report["resume_ok"] = (
            finished.returncode == 0
            and not report["after_resume_problems"]
            and {"early", "late"} <= set(report["after_resume"])
        )
    else:
        report["resume_ok"] = None
        report["resume_skipped"] = "python -m core train has no --resume"
    return report, out


# ----------------------------------------------------------------------------- entry point
def run(options: dict[str, Any]) -> dict[str, Any]:
    """Catalogue, fuzz, concurrency and crash test on a tiny demo built in a temporary folder.

    Options: ``quick`` (fewer kills and fuzz iterations), ``fuzz_iterations``, ``kills``, ``seed``.
    """
    from core.checkpoints import load_checkpoint
    from core.data import load_dataset, load_sample
    from core.data.demo import build_demo

    quick = bool(options.get("quick"))
    seed = int(options.get("seed", 0))
    kills = max(1, int(options.get("kills", 1 if quick else 3)))
    iterations = int(options.get("fuzz_iterations", 100 if quick else 400))
    with tempfile.TemporaryDirectory(prefix="fusion-reliability-") as tmp:
        workdir = Path(tmp)
        data = workdir / "data"
        build_demo(data, n_source=60, progress=False)
        crash, resumed = crash_test(data, workdir / "crash", kills, seed)
        checkpoint = resumed / "early"
        if crash["resume_ok"] is not True:  # the catalogue and threads still need a model
            subprocess.run(
                train_command(data, workdir / "fresh", "early"), cwd=PROJECT_ROOT, check=True, capture_output=True
            )
            checkpoint = workdir / "fresh" / "early"
        inputs = workdir / "inputs"
        inputs.mkdir()
        catalogue = bad_input_catalogue(checkpoint, inputs)
        fuzz = fuzz_decoders(iterations, seed)
        loaded = load_checkpoint(checkpoint)
        dataset = load_dataset(data)
        samples = [load_sample(record) for record in dataset.split("test")[:4]]
        concurrency = concurrent_users(loaded, samples, threads=8)
    failed_cases = [row["case"] for row in catalogue if not row["ok"]]
    return {
        "bad_inputs": {
            "cases": len(catalogue),
            "handled_as_expected": len(catalogue) - len(failed_cases),
            "failed": failed_cases,
            "table": catalogue,
        },
        "fuzz": fuzz,
        "concurrency": concurrency.to_json(),
        "crash": crash,
        "all_ok": not failed_cases
        and fuzz["unexpected_exceptions"] == 0
        and concurrency.identical
        and concurrency.model_unchanged
        and concurrency.hooks_added == 0
        and crash["complete_checkpoints_only"]
        and crash["resume_ok"] is not False,
    }
