"""Links that open a page on a given sample: ``explain?sample=<id>&checkpoint=<name>&target=<class>``,
and on given folders: ``?dataset=<folder>&checkpoints=<folder>``.

Compare's and Explore's "open in Explain" buttons and a URL pasted by a colleague land the
same way. A link is applied once per session (later widget changes are the user's). A
folder in a link is only a request: the sidebar checks it against the server's roots
(:mod:`core.roots`) like any other path.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import streamlit as st

from core.data import Dataset
from dashboard.navigation import page
from dashboard.state import EXPLAIN_CHECKPOINT, sample_from_record, set_current_sample

APPLIED = "link_applied"
FOLDERS_APPLIED = "folder_link_applied"
FOLDER_PARAMETERS = ("dataset", "checkpoints")


@dataclass(frozen=True)
class ExplainLink:
    """What an Explain link asks for; every part is optional."""

    sample: str | None = None
    checkpoint: str | None = None
    target: str | None = None

    def query(self) -> str:
        """The query string of this link (``sample=...&checkpoint=...``)."""
        return urlencode({k: v for k, v in vars(self).items() if v})


def new_explain_link() -> ExplainLink | None:
    """The link in the page's URL, if there is one this session has not applied yet."""
    params = st.query_params
    link = ExplainLink(params.get("sample"), params.get("checkpoint"), params.get("target"))
    if not any(vars(link).values()) or st.session_state.get(APPLIED) == link:
        return None
    st.session_state[APPLIED] = link
    return link


def new_folder_links() -> dict[str, str]:
    """Parameter -> folder of the ``dataset`` / ``checkpoints`` parameters in the URL that this
    session has not applied yet."""
    applied = st.session_state.setdefault(FOLDERS_APPLIED, {})
    fresh = {}
    for name in FOLDER_PARAMETERS:
        value = st.query_params.get(name)
        if value is not None and applied.get(name) != value:
            applied[name] = value
            fresh[name] = value
    return fresh


def open_in_explain(dataset: Dataset, record_id: str, checkpoint_path: str | None = None) -> None:
    """Make a dataset record the current sample and go to the Explain page (optionally on one checkpoint)."""
    set_current_sample(sample_from_record(dataset, record_id))
    if checkpoint_path is not None:
        st.session_state[EXPLAIN_CHECKPOINT] = checkpoint_path
    st.switch_page(page("explain"))


def open_in_predict(dataset: Dataset, record_id: str) -> None:
    """Make a dataset record the current sample and show it on Predict, as its "Dataset sample" choice."""
    sample = sample_from_record(dataset, record_id)
    set_current_sample(sample)
    record = dataset.record(record_id)
    # Predict's own widgets (dashboard.inputs.pick_record_id keys) are set to this record before it runs.
    st.session_state.update({"predict_source": "Dataset sample", "predict_split": record.split, "predict_record": record.id})
    st.switch_page(page("predict"))
