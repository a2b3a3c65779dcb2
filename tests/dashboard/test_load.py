"""Load: several simultaneous browser sessions upload and predict against one local dashboard
server for a bounded time; no session sees an error, and the server's peak memory is reported.

Run with ``pytest -m browser tests/dashboard/test_load.py -s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.server import CHROMIUM, CHROMIUM_ARGS
from tests.dashboard.locators import file_input

pytestmark = pytest.mark.browser

SESSIONS = 5
SECONDS = 45.0
MAX_ROUNDS = 6
"""Per session: each round opens Predict in a fresh session, uploads an image and waits for the table."""


@dataclass
class SessionLog:
    predictions: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


@pytest.fixture(scope="module")
def server(live_server) -> tuple[str, int]:
    return live_server.url, live_server.pid


PROMPT = "Upload an image, type some text or add audio"
"""Shown by Predict at the end of a run that received no input."""
PREDICTED = re.compile(r"checkpoint\(s\) predicted in")


async def idle_prompt(page) -> None:
    """Wait until Predict has finished a run that saw no input (its prompt is shown, nothing runs)."""
    await page.get_by_text(PROMPT).first.wait_for()
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")


async def one_session(browser, url: str, images: list[Path], index: int, deadline: float, shots: Path) -> SessionLog:
    log = SessionLog()
    context = await browser.new_context(viewport={"width": 1400, "height": 2000})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    try:
        for round_ in range(MAX_ROUNDS):
            if time.monotonic() > deadline:
                break
            started = time.monotonic()
            await page.goto(f"{url}/predict")
            await page.get_by_role("heading", name="Predict", exact=True).first.wait_for()
            # An upload sent before the first run has finished can be lost in the rerun.
            await idle_prompt(page)
            image = images[(index * MAX_ROUNDS + round_) % len(images)]
            await file_input(page, "Image").set_input_files(str(image))
            # Predictions or an error message, whichever comes first (errors are collected below).
            await page.get_by_text(PREDICTED).or_(page.locator('[data-testid="stAlertContentError"]')).first.wait_for()
            exceptions = await page.locator('[data-testid="stException"]').count()
            errors = await page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
            if exceptions:
                log.errors.append(f"round {round_}: {exceptions} exception element(s)")
            log.errors += [f"round {round_}: {text}" for text in errors]
            log.predictions += 1
            log.seconds.append(time.monotonic() - started)
    except Exception as err:  # a timeout or a crashed page is a failed session, reported with the rest
        shot = shots / f"session-{index}.png"
        try:
            chips = await page.locator('[data-testid="stFileUploaderFile"]').count()
            await page.screenshot(path=str(shot), full_page=True)
        except Exception:  # noqa: BLE001 - the page may be gone; the error below is what matters
            chips = -1
        log.errors.append(f"{type(err).__name__}: {err}"[:300] + f" (uploaded-file chips: {chips}; screenshot {shot})")
    finally:
        await context.close()
    return log


async def run_sessions(url: str, images: list[Path], shots: Path) -> list[SessionLog]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            deadline = time.monotonic() + SECONDS
            return await asyncio.gather(
                *(one_session(browser, url, images, i, deadline, shots) for i in range(SESSIONS))
            )
        finally:
            await browser.close()


@pytest.mark.timeout(600)
def test_simultaneous_sessions_upload_and_predict_without_errors(server, small_demo_env, tmp_path):
    url, pid = server
    images = sorted(Path(small_demo_env["FUSION_DEMO_DATA"]).glob("images/*.png"))[:12]
    baseline_mib = peak_rss_mib(pid)
    started = time.monotonic()
    logs = asyncio.run(run_sessions(url, images, tmp_path))
    elapsed = time.monotonic() - started
    predictions = sum(log.predictions for log in logs)
    errors = [f"session {i}: {e}" for i, log in enumerate(logs) for e in log.errors]
    latencies = sorted(s for log in logs for s in log.seconds)
    print(
        f"\nload: {SESSIONS} sessions, {predictions} predictions in {elapsed:.0f} s, {len(errors)} errors, "
        f"round trip median {latencies[len(latencies) // 2]:.1f} s / max {latencies[-1]:.1f} s, "
        f"server peak RSS {peak_rss_mib(pid):.0f} MiB (after start-up {baseline_mib:.0f} MiB)"
    )
    assert not errors, errors
    assert all(log.predictions >= 1 for log in logs), [log.predictions for log in logs]
