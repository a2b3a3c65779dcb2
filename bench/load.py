"""Load: many simultaneous browser sessions against one local dashboard server.

Each of ``sessions`` headless-Chromium sessions (one browser context each, all started at
once) repeats a round until ``rounds`` are done or ``seconds`` have passed since the start
(a round under way is finished): open Predict, upload its own test-split image, wait for
the predictions of every default checkpoint, follow "Explain this sample" and wait for the
SHAP and LIME explanation (which goes through the server's job queue, ``FUSION_MAX_JOBS``
wide). Reported: rounds, errors (exception elements, error boxes, timeouts), sessions that
finished no round (starved), p50/p95/max of the predict, explain and whole-round latency,
and the server's peak resident memory.

Options (all optional): ``sessions`` (default 20), ``rounds`` (per session, default 2),
``seconds`` (default 300), ``max_jobs`` (the server's ``FUSION_MAX_JOBS``, default its own
default), ``timeout_s`` (per wait, default 600), ``data``, ``checkpoints``, ``quick`` (5
sessions, one round).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    bench_server_env,
    browser_missing,
    file_input,
    free_port,
    memory_peaks,
    start_dashboard,
    stop_dashboard,
    wait_healthy,
)
from core.settings import settings

PROMPT = "Upload an image, type some text or add audio"
"""Shown by Predict at the end of a run that received no input."""
PREDICTED = re.compile(r"checkpoint\(s\) predicted in")
EXPLAINED = "Can these attributions be trusted?"
SCRIPT_RUNNING = '[data-testid="stStatusWidget"]'
EXCEPTION = '[data-testid="stException"]'
ERROR_BOX = '[data-testid="stAlertContentError"]'


@dataclass
class SessionLog:
    rounds: int = 0
    errors: list[str] = field(default_factory=list)
    predict_s: list[float] = field(default_factory=list)
    explain_s: list[float] = field(default_factory=list)
    round_s: list[float] = field(default_factory=list)


async def _problems(page, where: str) -> list[str]:
    exceptions = await page.locator(EXCEPTION).count()
    errors = await page.locator(ERROR_BOX).all_inner_texts()
    return ([f"{where}: {exceptions} exception element(s)"] if exceptions else []) + [f"{where}: {e}" for e in errors]


async def _idle(page) -> None:
    await page.wait_for_timeout(300)  # the status widget appears a moment after a rerun starts
    await page.locator(SCRIPT_RUNNING).wait_for(state="hidden")


async def _one_session(browser, url: str, image: Path, deadline: float, rounds: int, timeout_ms: float) -> SessionLog:
    log = SessionLog()
    context = await browser.new_context(viewport={"width": 1300, "height": 1800})
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    try:
        for round_ in range(rounds):
            if round_ and time.monotonic() > deadline:
                break
            started = time.monotonic()
            await page.goto(f"{url}/predict")
            await page.get_by_text(PROMPT).first.wait_for()
            await _idle(page)  # an upload sent before the first run has finished can be lost in the rerun
            uploaded = time.monotonic()
            await file_input(page, "Image").set_input_files(str(image))
            await page.get_by_text(PREDICTED).or_(page.locator(ERROR_BOX)).first.wait_for()
            log.predict_s.append(time.monotonic() - uploaded)
            log.errors += await _problems(page, f"round {round_} predict")
            clicked = time.monotonic()
            await page.get_by_role("link", name="Explain this sample with SHAP and LIME").click()
            await page.get_by_role("heading", name=EXPLAINED).or_(page.locator(ERROR_BOX)).first.wait_for()
            log.explain_s.append(time.monotonic() - clicked)
            await _idle(page)
            log.errors += await _problems(page, f"round {round_} explain")
            log.round_s.append(time.monotonic() - started)
            log.rounds += 1
    except Exception as err:  # noqa: BLE001 - a timeout or a crashed page is a failed session, reported with the rest
        log.errors.append(f"{type(err).__name__}: {err}"[:300])
    finally:
        await context.close()
    return log


async def _run_sessions(url: str, images: list[Path], sessions: int, rounds: int, seconds: float, timeout_ms: float):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            deadline = time.monotonic() + seconds
            return await asyncio.gather(
                *(
                    _one_session(browser, url, images[i % len(images)], deadline, rounds, timeout_ms)
                    for i in range(sessions)
                )
            )
        finally:
            await browser.close()


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "max": round(float(max(values)), 2),
    }


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Start a server, drive the sessions, stop it; a JSON-ready dict (or the reason it skipped)."""
    missing = browser_missing()
    if missing:
        return {"section": "load", "skipped": missing}

    quick = bool(options.get("quick"))
    sessions = int(options.get("sessions", 5 if quick else 20))
    rounds = int(options.get("rounds", 1 if quick else 2))
    seconds = float(options.get("seconds", 300))
    timeout_ms = 1000 * float(options.get("timeout_s", 600))
    scratch = Path(tempfile.mkdtemp(prefix="bench-load-"))
    env = bench_server_env(options, scratch)
    if options.get("max_jobs"):
        env["FUSION_MAX_JOBS"] = str(int(options["max_jobs"]))
    # Each session uploads its own image, so no session is served another one's cached result.
    images = sorted(Path(env["FUSION_DEMO_DATA"]).glob("images/*.png"))[: max(sessions, 1)]
    if not images:
        raise FileNotFoundError(f"no images/*.png in {env['FUSION_DEMO_DATA']} (build the demo first)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(scratch / "streamlit.log", "wb") as log:
        server = start_dashboard(port, env, log)
        try:
            wait_healthy(url, server)
            baseline = memory_peaks(server.pid)
            started = time.monotonic()
            logs = asyncio.run(_run_sessions(url, images, sessions, rounds, seconds, timeout_ms))
            elapsed = time.monotonic() - started
            memory = memory_peaks(server.pid)
        finally:
            stop_dashboard(server)
    errors = [f"session {i}: {e}" for i, session in enumerate(logs) for e in session.errors]
    per_session = [session.rounds for session in logs]
    return {
        "section": "load",
        "sessions": sessions,
        "rounds_per_session_max": rounds,
        "seconds_bound": seconds,
        "max_jobs": int(env["FUSION_MAX_JOBS"]) if "FUSION_MAX_JOBS" in env else settings().max_jobs,
        "clients": "headless Chromium on the server's own machine (its CPU time counts against the server's)",
        "elapsed_s": round(elapsed, 1),
        "rounds": sum(per_session),
        "rounds_per_session": per_session,
        "starved_sessions": sum(1 for n in per_session if n == 0),
        "errors": len(errors),
        "error_messages": errors[:20],
        "latency_s": {
            "predict": _percentiles([s for session in logs for s in session.predict_s]),
            "explain": _percentiles([s for session in logs for s in session.explain_s]),
            "round": _percentiles([s for session in logs for s in session.round_s]),
        },
        "memory": {**memory, "server_rss_after_start_mib": baseline["server_peak_rss_mib"]},
        "server_log": str(scratch / "streamlit.log"),
    }
