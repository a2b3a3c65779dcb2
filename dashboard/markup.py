"""User text inside Streamlit markdown: shown as typed, never as markup.

File names, sample texts and labels, checkpoint names from cards and error messages that
quote them all reach ``st.markdown``/``st.caption``/``st.error``, which read Markdown (and,
in Streamlit, ``$`` as LaTeX and ``:red[...]`` as colour).
:func:`escape_markdown` backslash-escapes every character that can open markup, a link, an
image, raw HTML, an entity or a colour directive (``[``), so ``<img src=x onerror=alert(1)>``
or ``[link](javascript:...)`` is displayed as those characters. (A ``:name:`` icon or emoji
code is left alone: it can only draw an icon.) HTML built by hand for
``unsafe_allow_html`` uses :func:`html.escape` instead.
"""

from __future__ import annotations

import re

_MARKUP = re.compile(r"([\\`*_\[\]<>$~|#&])")


def escape_markdown(value: object) -> str:
    """``str(value)`` on one line, with every character that could start markup escaped."""
    return _MARKUP.sub(r"\\\1", " ".join(str(value).split()))
