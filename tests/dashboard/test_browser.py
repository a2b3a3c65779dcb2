"""End to end in headless Chromium: a real ``streamlit run`` server, every page visited.

Run with ``pytest -m browser tests/dashboard/test_browser.py``. Screenshots land in
``test-artifacts/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.server import CHROMIUM, CHROMIUM_ARGS, file_input
from core.settings import PROJECT_ROOT

pytestmark = pytest.mark.browser

ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def server(live_server) -> str:
    return live_server.url


@pytest.fixture(scope="module")
def browser_page(server: str):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 2600})
        page.set_default_timeout(120_000)
        yield page
        browser.close()


def visit(page, server: str, path: str, heading: str) -> None:
    page.goto(f"{server}/{path}")
    page.get_by_role("heading", name=heading, exact=True).first.wait_for()
    page.wait_for_load_state("networkidle")


def settle(page, charts: int = 0) -> None:
    """Wait until Streamlit has finished running the script and drawn ``charts`` plotly charts."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)
    if charts:
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length >= {charts}", timeout=120_000
        )


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def settled_shot(page, name: str, charts: int = 0) -> None:
    """Once the page has settled with ``charts`` charts and no exception, save its screenshot."""
    settle(page, charts=charts)
    assert_no_exception(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_every_page_in_a_real_browser(server, browser_page, small_demo_env):
    page = browser_page
    data = Path(small_demo_env["FUSION_DEMO_DATA"])

    visit(page, server, "", "Overview")
    page.get_by_text("Sample gallery").wait_for()
    settled_shot(page, "overview", charts=3)

    visit(page, server, "predict", "Predict")
    file_input(page, "Image").set_input_files(str(sorted(data.glob("images/*.png"))[0]))
    settle(page)
    file_input(page, "Audio").set_input_files(str(sorted(data.glob("audio/*.wav"))[0]))
    settle(page)
    text = page.get_by_role("textbox", name="Text")
    text.fill("the digit after two")
    text.press("Control+Enter")
    page.get_by_text(re.compile(r"your upload \(.+\.png, .+\.wav\): audio \+ image \+ text")).wait_for()
    settle(page, charts=3)  # probabilities, modality Shapley bars, audio preview
    page.screenshot(path=str(ARTIFACTS / "predict.png"), full_page=True)
    assert page.get_by_text("Class probabilities").count() >= 1
    assert page.locator('[data-testid="stAudio"]').count() >= 1
    assert_no_exception(page)

    visit(page, server, "compare", "Compare")
    page.get_by_role("tab", name="Metrics").wait_for()
    settled_shot(page, "compare", charts=2)

    visit(page, server, "explain", "Explain")
    page.get_by_role("button", name="Explain this one").click()
    page.get_by_role("heading", name="Can these attributions be trusted?").wait_for()
    settled_shot(page, "explain", charts=5)

    visit(page, server, "train", "Train")
    page.get_by_role("heading", name="Runs").wait_for()
    settled_shot(page, "train")
