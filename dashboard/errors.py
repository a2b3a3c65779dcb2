"""Failures shown as messages, never as raw tracebacks.

A :class:`~core.errors.FusionError` is the user's to fix: its one-line message (the same
line the CLI prints after ``error:``) goes in an error box, its details (every bad row of a
manifest, say) in a collapsed element below. Anything else is a bug: a friendly line, with
the traceback inside a collapsed "details" element.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.errors import FusionError, user_message
from dashboard.markup import escape_markdown


def show_exception(err: BaseException, what: str) -> None:
    """An error box for ``err``, raised while doing ``what`` ("loading the model")."""
    if isinstance(err, FusionError):
        # Messages quote what the user gave (file names, labels): shown as text, never as markup.
        st.error(escape_markdown(user_message(err)), icon=":material/error:")
        if err.details:
            with st.expander("Details"):
                st.code(err.details, language="text")
        return
    st.error(
        f"Something went wrong while {what}. The rest of the page still works; details below.", icon=":material/error:"
    )
    with st.expander("Technical details"):
        st.code("".join(traceback.format_exception(err, limit=-8)), language="text")


@contextmanager
def friendly_errors(what: str) -> Iterator[None]:
    """Run a block of a page; an exception becomes an error box instead of a traceback.

    Streamlit's own control-flow exceptions (rerun, stop, page switch) derive from
    ``BaseException`` and pass through untouched.
    """
    try:
        yield
    except Exception as err:  # noqa: BLE001 - the point is to catch everything a page did not expect
        show_exception(err, what)
