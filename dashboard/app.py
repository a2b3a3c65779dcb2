"""Fusion Lens dashboard entry point: ``streamlit run dashboard/app.py``.

Runs before every page: sets the page config, draws the shared sidebar (its choices go
to ``st.session_state`` for the pages) and hands over to the page picked in the
navigation. ``core`` and ``dashboard`` are importable because the repository is
installed in the virtual environment (``make setup`` runs ``pip install -e .``).
"""

from __future__ import annotations

import streamlit as st

from dashboard.loaders import warm_explainers
from dashboard.navigation import all_pages
from dashboard.sidebar import render_sidebar

st.set_page_config(page_title="Fusion Lens", page_icon=":material/blur_on:", layout="wide")
navigation = st.navigation(all_pages(), position="sidebar")
st.logo(
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='160' height='32'>"
    "<circle cx='14' cy='16' r='9' fill='%234F46E5' opacity='0.85'/><circle cx='24' cy='16' r='9' fill='%23D97706' opacity='0.7'/>"
    "<text x='40' y='22' font-family='Helvetica,Arial,sans-serif' font-size='17' font-weight='700' fill='%231F2937'>Fusion Lens</text></svg>"
)
render_sidebar()
warm_explainers()
navigation.run()
