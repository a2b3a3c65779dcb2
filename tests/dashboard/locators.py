"""Playwright locators shared by the browser tests (sync and async pages alike)."""

from __future__ import annotations


def file_input(page, label: str):
    """The file input of the ``st.file_uploader`` labelled ``label``.

    Found by its label, never by position: while Streamlit re-renders, an uploader can be
    briefly absent from the page and ``.first`` / ``.nth(i)`` would then pick another one
    (a PNG meant for "Image" once landed in "Audio" this way under load).
    """
    uploader = page.locator('[data-testid="stFileUploader"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]').get_by_text(label, exact=True)
    )
    return uploader.locator('input[type="file"]')
