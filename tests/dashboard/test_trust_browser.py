"""Explain in headless Chromium on an attention-fusion checkpoint: every method's maps, the
attention maps (this sample's and the test split's) and the trust panel, without an exception.
The checkpoint's method check behind the panel's button is exercised in ``test_pages.py``.

Run with ``pytest -m browser tests/dashboard/test_trust_browser.py``; the screenshot lands in
``test-artifacts/explain-trust.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.server import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import SmallDemo
from tests.dashboard.conftest import LiveServer, live_dashboard
from tests.dashboard.test_browser import ARTIFACTS, assert_no_exception, settle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(every_fusion_demo: SmallDemo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("trust-server")
    yield from live_dashboard(every_fusion_demo.env(root), root)


def test_explain_shows_gradient_methods_attention_and_the_trust_panel(server, every_fusion_demo, small_demo):
    from playwright.sync_api import sync_playwright

    record = next(r for r in small_demo.split("test") if len(r.present()) == 3)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 9000})
        page.set_default_timeout(180_000)
        page.goto(f"{server.url}/explain?sample={record.id}&checkpoint=attention")
        page.get_by_role("heading", name="Attention between modalities").wait_for()
        page.get_by_role("heading", name="Can these attributions be trusted?").wait_for()
        settle(page, charts=12)
        assert_no_exception(page)
        for label in ("Integrated Gradients", "GradientSHAP", "Grad-CAM", "SHAP", "LIME"):
            assert page.get_by_text(label, exact=True).count() >= 1, label
        assert page.get_by_text("Grad-CAM explains the image only").count() == 2  # its text and audio tiles
        assert page.get_by_text("Who attends to whom, this sample").count() == 1
        # The checkpoint's method check waits for a click (computed and rendered in test_pages.py).
        assert page.get_by_role("button", name="Check the methods on this checkpoint").count() == 1
        page.get_by_text("the test split (average)").click()
        page.get_by_text("samples", exact=False).filter(has_text="Who attends to whom").first.wait_for()
        settle(page)
        assert_no_exception(page)
        page.screenshot(path=str(ARTIFACTS / "explain-trust.png"), full_page=True)
        browser.close()
