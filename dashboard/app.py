"""Fusion Lens dashboard entry point: ``streamlit run dashboard/app.py [-- --data-root DIR ...]``.

Runs before every page: sets the page config, applies the server's own arguments (extra
data and checkpoint roots, read-only mode), lets only signed-in, allowed users past when
sign-in is configured (:mod:`dashboard.access`; before ``st.navigation``, so every page
and deep link is covered), draws the shared sidebar (its choices go to
``st.session_state`` for the pages) and hands over to the page picked in the navigation.
``core`` and ``dashboard`` are importable because the repository is installed in the
virtual environment (``make setup`` runs ``pip install -e .``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

from core.errors import SettingsError
from core.settings import apply_server_arguments
from dashboard.access import require_access
from dashboard.errors import show_exception
from dashboard.jobs import resume_training_queue, work_queue
from dashboard.loaders import warm_explainers
from dashboard.navigation import all_pages
from dashboard.sidebar import render_sidebar, render_status
from dashboard.uploads import keep_uploads_in_memory

st.set_page_config(page_title="Fusion Lens", page_icon=":material/blur_on:", layout="wide")
# `streamlit run dashboard/app.py -- ARGS` makes sys.argv [this file, *ARGS]; a host that
# runs the script otherwise (AppTest inside pytest) has its own argv, which is not ours.
ARGUMENTS = sys.argv[1:] if sys.argv and Path(sys.argv[0]).resolve() == Path(__file__).resolve() else []
try:
    apply_server_arguments(ARGUMENTS)
except SettingsError as err:
    show_exception(err, "reading the dashboard's arguments")
    st.stop()
require_access()
keep_uploads_in_memory()
navigation = st.navigation(all_pages(), position="sidebar")
st.logo(
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='160' height='32'>"
    "<circle cx='14' cy='16' r='9' fill='%234F46E5' opacity='0.85'/><circle cx='24' cy='16' r='9' fill='%23D97706' opacity='0.7'/>"
    "<text x='40' y='22' font-family='Helvetica,Arial,sans-serif' font-size='17' font-weight='700' fill='%231F2937'>Fusion Lens</text></svg>"
)
render_sidebar()
warm_explainers(work_queue())
resume_training_queue()
try:
    navigation.run()
finally:  # also when the page stops or reruns the script: every run draws the status lines
    render_status()
