"""What a hostile browser can try against a live server, in headless Chromium.

- Folders: the sidebar has no path box; ``?dataset=`` / ``?checkpoints=`` links naming
  ``/etc``, ``/``, ``../..``, a symlink out of a data root, an existing folder elsewhere or
  nothing at all are refused with one and the same message. The extra data root is given on
  the dashboard's command line (``-- --data-root``), the other way roots reach the server.
- Markup: ``<img src=x onerror=alert(1)>`` as typed text and as an uploaded file name goes
  through Predict and Explain; it is shown as text, and no element or dialog comes of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from bench.server import file_input
from core.roots import NOT_OFFERED
from tests.dashboard.conftest import LiveServer, live_dashboard

pytestmark = pytest.mark.browser

PAYLOAD = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("roots").resolve()
    shared, private = base / "shared", base / "private"
    for dataset in (shared / "pets", private):
        dataset.mkdir(parents=True)
        (dataset / "manifest.csv").write_text("label,split,text\ncat,train,a cat\ndog,val,a dog\ncat,test,one cat\n")
    (shared / "escape").symlink_to(private, target_is_directory=True)
    return {"shared": shared, "pets": shared / "pets", "private": private, "symlink": shared / "escape"}


@pytest.fixture(scope="module")
def server(small_demo_env, folders, tmp_path_factory) -> Iterator[LiveServer]:
    yield from live_dashboard(
        small_demo_env, tmp_path_factory.mktemp("security"), app_arguments=["--data-root", str(folders["shared"])]
    )


@pytest.fixture(scope="module")
def page(server, chromium):
    page = chromium.new_page(viewport={"width": 1500, "height": 2400})
    page.set_default_timeout(120_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # every alert() the page tries, for the assertions below
    yield page
    page.close()


def settle(page) -> None:
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")


def open_link(page, server: LiveServer, query: str) -> list[str]:
    """Open the app with ``query``; the texts of the error boxes it shows."""
    page.goto(f"{server.url}/?{query}")
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    settle(page)
    return page.locator('[data-testid="stAlertContentError"] [data-testid="stMarkdownContainer"]').all_inner_texts()


def sidebar_choice(page, label: str) -> str:
    return page.locator('[data-testid="stSidebar"]').get_by_role("combobox", name=label).input_value()


def test_the_sidebar_has_pickers_and_no_path_box(server, page, folders):
    page.goto(server.url)
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.locator('[data-testid="stTextInput"]').count() == 0
    assert sidebar_choice(page, "Dataset folder") == "data"
    sidebar.get_by_role("combobox", name="Dataset folder").click()
    page.get_by_role("option").first.wait_for()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    assert [o.strip() for o in options] == ["data", "shared/pets"]  # not private/, not the symlink out


@pytest.mark.parametrize("target", ["/etc", "/", "../..", "symlink", "private", "/no/such/folder", "shared"])
def test_a_dataset_folder_outside_the_offered_ones_is_refused_with_one_message(server, page, folders, target):
    value = str(folders[target]) if target in folders else target
    assert open_link(page, server, f"dataset={quote(value)}") == [NOT_OFFERED]
    assert sidebar_choice(page, "Dataset folder") == "data"


@pytest.mark.parametrize("target", ["/tmp", "/", "{ckpt}/..", "{ckpt}/early", "../checkpoints"])
def test_a_checkpoint_folder_outside_the_roots_is_refused_with_the_same_message(server, page, small_demo_env, target):
    value = target.format(ckpt=small_demo_env["FUSION_CHECKPOINTS"])
    assert open_link(page, server, f"checkpoints={quote(value)}") == [NOT_OFFERED]


def test_a_dataset_inside_a_root_given_on_the_command_line_can_be_linked(server, page, folders):
    assert open_link(page, server, f"dataset={quote(str(folders['pets']))}") == []
    assert sidebar_choice(page, "Dataset folder") == "shared/pets"


def assert_shown_as_text(page) -> None:
    assert page.get_by_text(PAYLOAD).count() >= 1, "the payload should be visible as text"
    assert page.locator('img[src="x"]').count() == 0
    assert page.locator("[onerror]").count() == 0
    assert page.dialogs == []


def test_markup_in_text_and_file_names_is_shown_as_text_on_predict_and_explain(server, page, small_demo_env):
    image = sorted(Path(small_demo_env["FUSION_DEMO_DATA"]).glob("images/*.png"))[0].read_bytes()
    page.goto(f"{server.url}/predict")
    page.get_by_role("heading", name="Predict", exact=True).wait_for()
    settle(page)
    file_input(page, "Image").set_input_files({"name": f"{PAYLOAD}.png", "mimeType": "image/png", "buffer": image})
    settle(page)
    text = page.get_by_role("textbox", name="Text")
    text.fill(PAYLOAD)
    text.press("Control+Enter")
    page.get_by_text(f"your upload ({PAYLOAD}.png)").first.wait_for()
    settle(page)
    assert_shown_as_text(page)
    assert page.locator('[data-testid="stException"]').count() == 0

    page.get_by_role("link", name="Explain this sample with SHAP and LIME").click()
    page.get_by_role("heading", name="Can these attributions be trusted?").wait_for()
    settle(page)
    assert page.get_by_text(f"Explaining your upload ({PAYLOAD}.png)").count() == 1
    assert_shown_as_text(page)
    assert page.locator('[data-testid="stException"]').count() == 0
