"""Hostile and broken inputs: each catalogue case gets its typed error and a clear message from
core.io, from the CLI code path in-process, and from real ``python -m core predict`` processes
(exit code 2, the message on stderr, no traceback); odd-but-valid inputs predict."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bench.hostile_inputs import CASES, HOSTILE_INPUTS, HostileInput, cli_text_argument
from core.cli import main
from core.errors import InputError, InputTooLargeError
from core.io import check_audio, decode_audio, encode_wav, read_file
from core.settings import PROJECT_ROOT, Limits

CLI_CASES = [case for case in HOSTILE_INPUTS if case.cli]
# Two real processes prove the process boundary (exit code, stderr, no traceback); the slow
# sweep runs one case of every kind of answer (modality x error, limits from the environment or
# not) in a real process: each pays for importing torch, and every case already goes through the
# CLI's code path in-process.
SUBPROCESS_QUICK = [CASES["image-bomb-20000px"], CASES["text-invalid-utf8"]]


def _id(case: HostileInput) -> str:
    return case.name


def cli_arguments(case: HostileInput, folder: Path) -> list[str | bytes]:
    """``--image PATH`` / ``--audio PATH`` with the payload saved under its (possibly lying) name, or ``--text``."""
    payload = case.payload()
    if case.modality == "text":
        return ["--text", payload]  # bytes stay bytes: exec passes them to argv untouched
    path = folder / case.filename
    path.write_bytes(payload)
    return [f"--{case.modality}", str(path)]


def test_case_names_are_unique():
    assert len(CASES) == len(HOSTILE_INPUTS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", HOSTILE_INPUTS, ids=_id)
def test_decoder_answers_with_the_catalogued_error(case: HostileInput):
    if case.expected is None:
        decoded = case.decode()
        if case.modality == "image":
            assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3
        else:
            assert decoded.dtype == np.float32 and decoded.ndim == 1 and decoded.size >= 1
            assert np.isfinite(decoded).all()
        return
    with pytest.raises(case.expected, match=case.message) as caught:
        case.decode()
    assert isinstance(caught.value, InputError)


AUDIO_CASES = [case for case in HOSTILE_INPUTS if case.modality == "audio"]


@pytest.mark.parametrize("case", AUDIO_CASES, ids=_id)
def test_validation_refuses_exactly_what_decoding_refuses(case: HostileInput):
    """Validation checks audio without resampling it: the same verdict, the same message."""
    if case.expected is None:
        assert check_audio(case.payload(), case.limits) is None
        return
    with pytest.raises(case.expected, match=case.message):
        check_audio(case.payload(), case.limits)


def test_validation_does_not_resample_but_decoding_does(monkeypatch):
    import librosa

    clip = encode_wav(np.sin(np.linspace(0, 400, 44_100)).astype(np.float32), sample_rate=44_100)
    calls = []
    real = librosa.resample
    monkeypatch.setattr(librosa, "resample", lambda *a, **k: calls.append(k["orig_sr"]) or real(*a, **k))
    check_audio(clip)
    assert calls == []
    assert decode_audio(clip).shape == (16_000,)
    assert calls == [44_100]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CLI_CASES, ids=_id)
def test_cli_code_path_prints_one_clear_line(case, small_checkpoints, tmp_path, monkeypatch, capsys):
    for name, value in case.env().items():
        monkeypatch.setenv(name, value)
    arguments = ["--text", cli_text_argument(case)] if case.modality == "text" else cli_arguments(case, tmp_path)
    code = main(["predict", "--checkpoint", str(small_checkpoints["early"]), *arguments])
    out, err = capsys.readouterr()
    if case.expected is None:
        assert code == 0, err
        assert "predicted" in out
    else:
        assert code == 2
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert re.search(case.message, err), err


def run_predict(case: HostileInput, checkpoint: Path, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir()
    return subprocess.run(
        [sys.executable, "-m", "core", "predict", "--checkpoint", str(checkpoint), *cli_arguments(case, folder)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **case.env()},
        capture_output=True,
        timeout=240,
    )


def assert_process_answer(case: HostileInput, result: subprocess.CompletedProcess) -> None:
    stderr = result.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    if case.expected is None:
        assert result.returncode == 0, stderr
        assert b"predicted" in result.stdout
    else:
        assert result.returncode == 2, stderr
        assert re.search(case.message, stderr), stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_real_cli_processes_exit_2_with_the_message(small_checkpoints, tmp_path):
    with ThreadPoolExecutor(2) as pool:
        results = pool.map(
            lambda case: run_predict(case, small_checkpoints["early"], tmp_path / case.name), SUBPROCESS_QUICK
        )
        for case, result in zip(SUBPROCESS_QUICK, results, strict=True):
            assert_process_answer(case, result)


def answer_kind(case: HostileInput) -> tuple:
    """What a case checks at the process boundary: its modality, its error, limits from the environment or not."""
    return case.modality, case.expected, bool(case.env())


def one_case_per_answer(cases: list[HostileInput]) -> list[HostileInput]:
    """The first case of each :func:`answer_kind`."""
    kinds: dict[tuple, HostileInput] = {}
    for case in cases:
        kinds.setdefault(answer_kind(case), case)
    return list(kinds.values())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_kind_of_answer_in_a_real_cli_process(small_checkpoints, tmp_path):
    quick = {answer_kind(c) for c in SUBPROCESS_QUICK}
    cases = [c for c in one_case_per_answer(CLI_CASES) if answer_kind(c) not in quick]
    assert len(cases) >= 10, "every modality, error and successful decode is represented"
    with ThreadPoolExecutor(2) as pool:  # two processes at a time: each imports torch on one core
        results = pool.map(lambda case: run_predict(case, small_checkpoints["early"], tmp_path / case.name), cases)
        failures = []
        for case, result in zip(cases, results, strict=True):
            try:
                assert_process_answer(case, result)
            except AssertionError as err:
                failures.append(f"{case.name}: {err}")
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------- memory
BOMBS = ["image-bomb-20000px", "image-over-pixel-limit", "audio-header-lies-384khz", "audio-header-claims-hours"]
MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from bench.hostile_inputs import CASES
    for warm_up in (CASES["image-1px"], CASES["audio-7919hz"]):  # imports and lazily built tables
        warm_up.decode()
    growth = {}
    for name in sys.argv[1:]:
        case = CASES[name]
        case.payload()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            case.decode()
            raised = None
        except Exception as err:
            raised = type(err).__name__
        growth[name] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, raised)
    print(json.dumps(growth))
    """
)


@pytest.mark.timeout(120)
def test_bombs_are_refused_without_allocating():
    """Peak RSS of a fresh process (C allocations included, unlike tracemalloc) barely moves."""
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, *BOMBS], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=100, check=True
    )
    for name, (grown_kib, raised) in json.loads(result.stdout).items():
        assert raised == CASES[name].expected.__name__
        assert grown_kib < 32 * 1024, f"{name} grew the peak RSS by {grown_kib / 1024:.0f} MiB"


def test_lying_header_memory_follows_the_decoded_samples():
    """tracemalloc sees numpy buffers: a 3 KB FLAC claiming 22M samples must not get a 22M-sample buffer."""
    import tracemalloc

    case = CASES["audio-header-lies-384khz"]
    payload = case.payload()
    tracemalloc.start()
    try:
        with pytest.raises(case.expected):
            case.decode()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a {len(payload)}-byte file"


# ----------------------------------------------------------------------------- files
def test_read_file_refuses_before_reading(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 5000)
    with pytest.raises(InputTooLargeError, match=r"4\.9 KiB, over the 4\.0 KiB limit"):
        read_file(big, Limits(max_bytes=4096))
    with pytest.raises(InputError, match="Not a regular file"):
        read_file(tmp_path, Limits())
    with pytest.raises(InputError, match="Not a regular file"):
        read_file("/dev/zero", Limits())  # endless: must never be read
    with pytest.raises(InputError, match="File not found"):
        read_file(tmp_path / "missing.wav")
