"""Dashboard responsiveness in a real browser: cold start, page switches, server memory.

- ``cold_start``: ``streamlit run dashboard/app.py`` is started on a free localhost port;
  seconds until ``/_stcore/health`` answers, and until headless Chromium shows the
  Overview page's content (title, sample gallery, charts, script finished) with no
  ``stException``.
- ``page_switch``: each page is first visited once through the sidebar navigation
  (``first_visit_s``: models loaded, evaluations computed), then the pages are cycled
  again; ``warm_s`` is the median time from the click until the page's content is
  visible and its script has finished.
- ``memory``: peak resident memory (``VmHWM``) of the server and its child processes
  after Predict (a dataset sample) and Compare were shown with every checkpoint selected.

Skipped, with the reason, when Chromium or the playwright package is missing.

Options (all optional): ``data``, ``checkpoints``, ``cache_dir`` (the server's cache folder; default: a
fresh one), ``quick`` (one switching cycle),
``cycles`` (warm switching cycles, default 3), ``timeout_s`` (per wait, default 300).
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    bench_server_env,
    browser_missing,
    free_port,
    memory_peaks,
    start_dashboard,
    stop_dashboard,
    wait_healthy,
)
from core.checkpoints import versions

PAGES = ("Overview", "Predict", "Compare", "Explain", "Train")
SCRIPT_RUNNING = '[data-testid="stStatusWidget"]'
EXCEPTION = '[data-testid="stException"]'


def _content(page, title: str):
    """A locator of something only page ``title`` shows once its main content is drawn."""
    if title == "Overview":
        return page.get_by_text("Sample gallery")
    if title == "Predict":  # predictions of the dataset sample, or the upload form when the choice was reset
        return page.get_by_text("Class probabilities").or_(page.locator('[data-testid="stFileUploader"]'))
    if title == "Compare":
        return page.get_by_role("tab", name="Metrics")
    if title == "Explain":  # the current sample's explanation, or the sample picker when there is none
        return page.get_by_role("heading", name="Which modality mattered").or_(
            page.get_by_role("button", name="Explain this one")
        )
    return page.get_by_role("heading", name="Runs")


def _settle(page, timeout_ms: float) -> None:
    """Wait until Streamlit has finished running the page's script."""
    page.wait_for_timeout(500)  # the status widget appears a moment after a rerun starts
    page.locator(SCRIPT_RUNNING).wait_for(state="hidden", timeout=timeout_ms)


def _show_page(page, title: str, timeout_ms: float) -> int:
    """Wait until page ``title``'s heading and main content are visible; returns its stException count."""
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=timeout_ms)
    _content(page, title).first.wait_for(timeout=timeout_ms)
    return page.locator(EXCEPTION).count()


def _switch(page, title: str, timeout_ms: float) -> tuple[float, int]:
    """Click ``title`` in the sidebar navigation; seconds until its content is visible, and its stException count.

    The page's script is then left to finish (not timed) so the next switch starts from rest.
    """
    link = page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first
    started = time.perf_counter()
    link.click()
    _show_page(page, title, timeout_ms)
    seconds = time.perf_counter() - started
    _settle(page, timeout_ms)
    return seconds, page.locator(EXCEPTION).count()


def _select_every_checkpoint(page, timeout_ms: float) -> int:
    """Add every checkpoint the sidebar offers to its multiselect; returns how many are selected."""
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').first
    for _ in range(100):  # bounded: one option per round
        picker.locator("input").click()
        options = page.locator('[role="option"]')
        if options.count() == 0 or options.first.inner_text().strip().lower().startswith("no "):
            page.keyboard.press("Escape")
            break
        options.first.click()
        _settle(page, timeout_ms)
    return picker.locator("[data-tag]").count()


def _predict_dataset_sample(page, timeout_ms: float) -> None:
    page.get_by_text("Dataset sample", exact=True).click()
    page.get_by_text("Class probabilities").first.wait_for(timeout=timeout_ms)
    _settle(page, timeout_ms)


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Drive a live dashboard in headless Chromium; returns a JSON-ready dict (or the reason it skipped)."""

    missing = browser_missing()
    if missing:
        return {"section": "dashboard", "skipped": missing}
    from playwright.sync_api import sync_playwright

    quick = bool(options.get("quick"))
    cycles = int(options.get("cycles", 1 if quick else 3))
    timeout_ms = 1000 * float(options.get("timeout_s", 300))
    scratch = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    env = bench_server_env(options, scratch)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    exceptions: dict[str, int] = {}
    with sync_playwright() as playwright, open(scratch / "streamlit.log", "wb") as log:
        # The browser is up before the clock starts: its own start-up is not the dashboard's.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 2000})
        page.set_default_timeout(timeout_ms)
        started = time.perf_counter()
        server = start_dashboard(port, env, log)
        try:
            wait_healthy(url, server, timeout=timeout_ms / 1000)
            healthy_s = time.perf_counter() - started
            page.goto(url)
            _show_page(page, "Overview", timeout_ms)
            first_page_s = time.perf_counter() - started
            _settle(page, timeout_ms)
            exceptions["Overview"] = page.locator(EXCEPTION).count()
            if exceptions["Overview"]:
                raise RuntimeError(f"the Overview page shows an exception; see {scratch / 'streamlit.log'}")
            memory_cold = memory_peaks(server.pid)

            selected = _select_every_checkpoint(page, timeout_ms)
            first_visit: dict[str, float] = {}
            for title in PAGES[1:]:
                visit_started = time.perf_counter()
                _switch(page, title, timeout_ms)
                if title == "Predict":  # every selected checkpoint predicts a test sample
                    _predict_dataset_sample(page, timeout_ms)
                first_visit[title] = time.perf_counter() - visit_started
                exceptions[title] = page.locator(EXCEPTION).count()
            warm: dict[str, list[float]] = {title: [] for title in PAGES}
            for _ in range(cycles):
                for title in PAGES:
                    seconds, count = _switch(page, title, timeout_ms)
                    warm[title].append(seconds)
                    exceptions[title] = max(exceptions.get(title, 0), count)
            memory = memory_peaks(server.pid)
        finally:
            stop_dashboard(server)
            browser.close()
    all_warm = [s for times in warm.values() for s in times]
    return {
        "section": "dashboard",
        "versions": {
            **versions(),
            "streamlit": importlib.metadata.version("streamlit"),
            "playwright": importlib.metadata.version("playwright"),
        },
        "checkpoints_selected": selected,
        "cold_start": {
            "healthy_s": healthy_s,
            "first_page_s": first_page_s,
            "page": "Overview",
            "peak_rss_mib": memory_cold["server_peak_rss_mib"],
        },
        "page_switch": {
            "cycles": cycles,
            "first_visit_s": first_visit,
            "warm_s": {title: float(np.median(times)) for title, times in warm.items()},
            "warm_median_s": float(np.median(all_warm)),
            "warm_max_s": float(np.max(all_warm)),
        },
        "memory": memory,
        "exceptions": exceptions,
    }
