"""Every browser-sendable hostile input on the Predict page: an error box with core.io's message,
no exception element, and the same session still predicts from a good upload afterwards."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from bench.hostile_inputs import CASES, HOSTILE_INPUTS, HostileInput
from core.settings import PROJECT_ROOT

APP = str(PROJECT_ROOT / "dashboard" / "app.py")
UI_CASES = [case for case in HOSTILE_INPUTS if case.ui]
MIME = {"image": "image/png", "audio": "audio/wav"}


def predict_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("../pages/predict.py")
    at.run()
    return at


def give(at: AppTest, case: HostileInput) -> None:
    payload = case.payload()
    if case.modality == "text":
        at.text_area(key="predict_text").input(payload)
    else:
        at.file_uploader(key=f"predict_{case.modality}").set_value((case.filename, payload, MIME[case.modality]))


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(scope="module")
def page(small_demo_env) -> AppTest:
    """One Predict session for every case, as one user trying file after file."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in small_demo_env.items():
            patch.setenv(name, value)
        yield predict_page()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", UI_CASES, ids=lambda c: c.name)
def test_hostile_upload_shows_the_message_and_the_app_keeps_serving(page, case, monkeypatch):
    for name, value in case.env().items():
        monkeypatch.setenv(name, value)
    at = page
    at.text_area(key="predict_text").input("")
    for modality in ("image", "audio"):
        at.file_uploader(key=f"predict_{modality}").set_value(None)
    give(at, case)
    # A valid input next to the hostile one: the bad one is reported, the good one still predicts.
    if case.modality == "image":
        at.text_area(key="predict_text").input("the digit after two")
    else:
        at.file_uploader(key="predict_image").set_value(("good.png", CASES["image-1px"].payload(), "image/png"))
    at.run()
    assert_no_exception(at)
    errors = [e.value for e in at.error]
    if case.expected is None:
        assert not errors, errors
    else:
        assert any(re.search(case.message, e) for e in errors), errors
    assert at.dataframe, "the valid input still produced predictions"
    assert list(at.dataframe[0].value["checkpoint"]) == ["early", "late"]
