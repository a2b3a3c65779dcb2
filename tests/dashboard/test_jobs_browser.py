"""Heavy jobs on a live server (FUSION_MAX_JOBS=1, read-only), in headless Chromium.

One browser starts a long explanation; a second one asks for another and is told its place
in line; the second browser goes away and the server cancels its job (Streamlit's runtime
reports the session gone). The same server is read-only: the Train page says so and offers
no way to start a run. Cancelling a *running* job whose sessions ended is checked with real
threads in ``test_jobs.py`` (the same watcher; only the clock is the test's).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.roots import READ_ONLY
from tests.dashboard.conftest import LiveServer, live_dashboard

pytestmark = pytest.mark.browser

LONG = {"LIME samples": "5000", "SHAP evals": "5000", "Image segments": "200", "Audio segments": "40", "IG steps": "512"}
"""Explanation settings that keep one job busy for half a minute or more on two CPU cores."""

WAITING = {**LONG, "Audio segments": "39"}
"""The second browser's explanation: one nobody computed, and as long as the first, so that it is
still unfinished when its tab closes even if the first one has ended and it runs by then."""


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def server(small_demo_env, logs) -> Iterator[LiveServer]:
    env = {**small_demo_env, "FUSION_MAX_JOBS": "1", "FUSION_READ_ONLY": "1", "FUSION_RUNS": str(logs / "runs")}
    yield from live_dashboard(env, logs)


@pytest.fixture(scope="module")
def browser(server, chromium):
    return chromium  # the server first: its start-up is not the browser's


def new_page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 2000})
    page = context.new_page()
    page.set_default_timeout(120_000)
    return context, page


def settle(page) -> None:
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")


def explain_first_record(page, server: LiveServer) -> None:
    page.goto(f"{server.url}/explain")
    page.get_by_role("button", name="Explain this one").click()
    page.get_by_role("heading", name="Inside each modality").wait_for()


def jobs_line(page, server: LiveServer) -> str:
    page.goto(server.url)
    caption = page.locator('[data-testid="stSidebar"]').get_by_text("heavy jobs:")
    caption.wait_for()
    return caption.inner_text()


def ask(page, settings: dict[str, str]) -> None:
    """Type each explanation setting (each change cancels the page's previous job and submits the next)."""
    for label, value in settings.items():
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(300)


CANCELLED = "Cancelled an explanation: every browser session waiting for it has closed."


def test_a_job_waits_for_its_turn_and_is_cancelled_when_its_browser_closes(server, browser, logs):
    # Both browsers are on Explain first, so that the second can ask at once once the first is busy.
    holder_context, holder = new_page(browser)
    waiter_context, waiter = new_page(browser)
    for page in (holder, waiter):
        explain_first_record(page, server)
        page.get_by_role("heading", name="Can these attributions be trusted?").wait_for()
    ask(holder, LONG)
    holder.get_by_role("combobox", name="SHAP algorithm").click()
    holder.get_by_role("option", name="Permutation").click()
    holder.get_by_text("Computing SHAP, LIME").first.wait_for()

    ask(waiter, WAITING)  # it needs the one slot, which is taken
    waiter.get_by_text("Waiting: 0 jobs ahead of yours").wait_for()
    watcher_context, watcher = new_page(browser)
    # The waiter was shown its place in line above. On a fast machine the holder's long job may
    # already have ended when the watcher looks, and then the waiter's job is the one running.
    assert re.search(r"1 running, [01] waiting", jobs_line(watcher, server))

    waiter_context.close()  # the tab with the waiting job goes away
    deadline = time.monotonic() + 90  # a bound, generous for a loaded CI machine
    while CANCELLED not in (logs / "streamlit.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (logs / "streamlit.log").read_text().count(CANCELLED) == 1
    assert "0 waiting" in jobs_line(watcher, server)  # it left the line
    holder_context.close()
    watcher_context.close()


def test_read_only_server_shows_why_and_offers_no_training(server, browser):
    context, page = new_page(browser)
    page.goto(f"{server.url}/train")
    page.get_by_role("heading", name="Runs").wait_for()
    settle(page)
    assert page.get_by_text(READ_ONLY).count() == 1
    assert page.get_by_role("button", name="Start training").count() == 0
    assert "read-only server" in page.locator('[data-testid="stSidebar"]').inner_text()
    context.close()
