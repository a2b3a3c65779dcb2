"""The Explore page in headless Chromium on the small demo: filters, the map, a lasso, an upload on the map.

Run with ``pytest -m browser tests/dashboard/test_explore_browser.py``; screenshots land in
``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from bench.server import file_input
from core.data import load_dataset
from tests.dashboard.test_browser import ARTIFACTS, assert_no_exception, browser_page, server, settle  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

MAP = '[data-testid="stPlotlyChart"]'
CACHED_MAP_SECONDS = 5.0


def matching(page) -> int:
    text = page.get_by_text(re.compile(r"of \d[\d,]* matching")).first.inner_text()
    return int(re.search(r"of ([\d,]+) matching", text).group(1).replace(",", ""))


def open_tab(page, name: str, timeout_s: float = 120) -> float:
    """Click a tab of the Explore page; seconds until its map (or content) is drawn."""
    started = time.perf_counter()
    page.get_by_role("tab", name=name).click()
    if name == "Projector":
        page.locator(f"{MAP} .scatterlayer, {MAP} canvas").first.wait_for(timeout=timeout_s * 1000)
    return time.perf_counter() - started


def pick(page, widget: str, option: str, attempts: int = 3) -> None:
    """Choose ``option`` in the multiselect labelled ``widget`` and wait for its chip. A rerun
    that redraws the list between the click on the box and the click on the option (the
    server was busy, e.g. compiling SHAP's code in the background) closes it: pick again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text=widget).first
    for attempt in range(attempts):
        box.locator("input").first.click()
        page.get_by_role("option", name=option, exact=True).click()
        page.keyboard.press("Escape")
        try:
            box.get_by_text(option, exact=True).first.wait_for(timeout=15_000)
            return
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                raise


def lasso(page) -> None:
    """Pick plotly's lasso tool and draw a loop around the left half of the map."""
    chart = page.locator(MAP).first
    chart.hover()
    chart.locator('[data-title="Lasso Select"]').first.click()
    box = chart.locator(".nsewdrag").first.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + 0.02 * w, y + 0.02 * h)
    page.mouse.down()
    for fx, fy in [(0.55, 0.02), (0.55, 0.98), (0.02, 0.98), (0.02, 0.03)]:
        page.mouse.move(x + fx * w, y + fy * h, steps=10)
    page.mouse.up()


def test_explore_filters_maps_selects_and_places_an_upload(server, browser_page, small_demo_env):  # noqa: F811
    page = browser_page
    data = Path(small_demo_env["FUSION_DEMO_DATA"])
    test = load_dataset(data).split("test")

    page.goto(f"{server}/explore")
    page.get_by_role("heading", name="Explore", exact=True).first.wait_for()
    page.get_by_text(re.compile(r"of \d+ matching")).first.wait_for()
    settle(page)
    assert matching(page) == len(test)
    assert_no_exception(page)

    label = test[0].label
    pick(page, "Label", label)
    page.get_by_text(re.compile(rf"of {sum(r.label == label for r in test)} matching")).first.wait_for()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "explore-browse.png"), full_page=True)
    assert_no_exception(page)

    page.locator('[data-testid="stSelectbox"]').filter(has_text="Split").first.click()
    page.get_by_role("option", name="all", exact=True).click()
    settle(page)
    open_tab(page, "Projector", timeout_s=600)  # the first visit fits UMAP (numba compiles it once per process)
    settle(page)
    open_tab(page, "Browse")
    settle(page)
    # The label filter was kept while the Browse tab was closed (its widgets are not drawn then).
    everything = load_dataset(data).records
    page.get_by_text(re.compile(rf"of {sum(r.label == label for r in everything)} matching")).first.wait_for()
    box = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Label").first
    assert box.get_by_text(label, exact=True).count() == 1
    seconds = open_tab(page, "Projector")
    settle(page)
    assert seconds < CACHED_MAP_SECONDS, f"the cached map took {seconds:.1f} s to draw"
    assert_no_exception(page)

    lasso(page)
    heading = page.get_by_role("heading", name=re.compile(r"^\d+ selected samples$"))
    heading.wait_for()
    settle(page)
    selected = int(heading.inner_text().split()[0])
    assert 0 < selected < len(load_dataset(data).records)
    assert page.get_by_text(re.compile(rf"of {selected} matching")).count() == 1
    page.screenshot(path=str(ARTIFACTS / "explore-lasso.png"), full_page=True)
    assert_no_exception(page)

    page.get_by_text("Your sample: upload one").click()
    file_input(page, "Image").set_input_files(str(sorted(data.glob("images/*.png"))[0]))
    page.get_by_text("Current sample: your upload").wait_for()
    page.locator(f"{MAP} .legendtext", has_text="current sample").first.wait_for()
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "explore-upload.png"), full_page=True)
    assert_no_exception(page)

    # Paging, then a card's "Similar" (the Neighbours tab) and "Explain" (the Explain page).
    open_tab(page, "Browse")
    page.get_by_role("button", name="Show all").click()
    page.get_by_text(re.compile(r"of \d+ matching")).first.wait_for()
    settle(page)
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Per page").first.click()
    page.get_by_role("option", name="12", exact=True).click()
    page.get_by_text(re.compile(r"page 1 of ([2-9]|\d\d)")).first.wait_for()
    settle(page)
    page.get_by_role("button", name="Next").click()
    page.get_by_text(re.compile(r"page 2 of")).first.wait_for()
    settle(page)
    page.get_by_role("radio", name="Similar").first.click()
    page.get_by_role("tab", name="Neighbours", selected=True).wait_for()
    settle(page)
    assert_no_exception(page)
    open_tab(page, "Browse")
    page.get_by_text(re.compile(r"of \d+ matching")).first.wait_for()
    settle(page)
    page.get_by_role("radio", name="Explain").first.click()
    page.get_by_role("heading", name="Explain", exact=True).first.wait_for()
    settle(page)
    assert_no_exception(page)
