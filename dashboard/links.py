"""Links that open a page on a given sample: ``explain?sample=<id>&checkpoint=<name>&target=<class>``.

Compare's and Explore's "open in Explain" buttons and a URL pasted by a colleague land the
same way. A link is applied once per session (later widget changes are the user's).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import streamlit as st

APPLIED = "link_applied"


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
