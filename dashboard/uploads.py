"""Uploads stay in memory and under the size limits.

Streamlit keeps uploaded files in memory (its ``MemoryUploadedFileManager``, dropped when the
session ends), but the web server parses each upload with Starlette, whose multipart parser
spools any file over 1 MiB to a temporary file on disk while the request is read.
:func:`keep_uploads_in_memory` raises that spool threshold above the largest upload the
server accepts, so no byte of an upload is written to the server's disk; :mod:`core.io`
decodes from memory too.

Each uploader is limited to :func:`upload_limit_mb`: ``FUSION_UPLOAD_MAX_MB``, capped by
Streamlit's ``server.maxUploadSize`` (which the server enforces for every request).
"""

from __future__ import annotations

import streamlit as st
from starlette.formparsers import MultiPartParser

from core.settings import settings

MULTIPART_MARGIN_BYTES = 1024 * 1024
"""Room for the multipart framing around the largest file (Streamlit allows the same margin)."""


def server_upload_cap_mb() -> int:
    """Streamlit's ``server.maxUploadSize``: what the server accepts in any one request."""
    return int(st.get_option("server.maxUploadSize"))


def upload_limit_mb() -> int:
    """The per-uploader limit in megabytes: ``FUSION_UPLOAD_MAX_MB``, at most the server's cap."""
    return max(1, min(settings().upload_max_mb, server_upload_cap_mb()))


def keep_uploads_in_memory() -> None:
    """Make the server's multipart parser hold every accepted upload in memory (idempotent)."""
    needed = server_upload_cap_mb() * 1024 * 1024 + MULTIPART_MARGIN_BYTES
    if MultiPartParser.spool_max_size < needed:
        MultiPartParser.spool_max_size = needed
