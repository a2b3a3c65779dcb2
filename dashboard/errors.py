"""Failures shown as messages, never as raw tracebacks."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.checkpoints import CheckpointError
from core.encoders import EncoderLoadError
from core.evaluate import EvaluationError
from core.io import InputError

# Errors whose message is written for users: shown as they are, without details.
USER_ERRORS = (InputError, CheckpointError, EncoderLoadError, EvaluationError)


def show_exception(err: BaseException, what: str) -> None:
    """An error box: the message for known user errors, a friendly line plus details otherwise."""
    if isinstance(err, USER_ERRORS):
        st.error(str(err), icon=":material/error:")
        return
    st.error(f"Something went wrong while {what}. The rest of the page still works; details below.", icon=":material/error:")
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
