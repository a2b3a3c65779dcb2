"""The dashboard's pages, defined once so the entry point and page links agree."""

from __future__ import annotations

import streamlit as st

from core.settings import PROJECT_ROOT

PAGES_DIR = PROJECT_ROOT / "pages"

# name -> (file, title, icon); order is the navigation order.
PAGES: dict[str, tuple[str, str, str]] = {
    "overview": ("overview.py", "Overview", ":material/dashboard:"),
    "predict": ("predict.py", "Predict", ":material/online_prediction:"),
    "compare": ("compare.py", "Compare", ":material/compare_arrows:"),
    "explore": ("explore.py", "Explore", ":material/scatter_plot:"),
    "explain": ("explain.py", "Explain", ":material/psychology_alt:"),
    "train": ("train.py", "Train", ":material/model_training:"),
}


def page(name: str) -> st.Page:
    """The ``st.Page`` of a page name, e.g. for ``st.switch_page(page("explain"))``."""
    file, title, icon = PAGES[name]
    return st.Page(PAGES_DIR / file, title=title, icon=icon, default=name == "overview")


def all_pages() -> list[st.Page]:
    return [page(name) for name in PAGES]
