"""Uploads stay in memory (never spooled to the server's disk) and under the per-uploader limit."""

from __future__ import annotations

import asyncio

import pytest
from starlette.formparsers import MultiPartParser
from starlette.requests import Request

from dashboard.uploads import keep_uploads_in_memory, server_upload_cap_mb, upload_limit_mb
from tests.dashboard.test_pages import open_page


def parse_upload(size: int):
    """Parse a multipart request carrying one ``size``-byte file the way the upload route does."""
    boundary = "fusionlens"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "PUT",
        "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())],
    }

    async def parse():
        form = await Request(scope, receive).form()
        upload = form["file"]
        return upload.file._rolled, len(await upload.read())  # _rolled: moved from memory to a disk file

    return asyncio.run(parse())


def test_an_upload_of_the_largest_accepted_size_is_never_written_to_disk(monkeypatch):
    size = 3 * 1024 * 1024
    monkeypatch.setattr(MultiPartParser, "spool_max_size", 1024 * 1024)  # Starlette's default
    assert parse_upload(size) == (True, size)  # what Streamlit's server does unpatched: spooled to /tmp
    keep_uploads_in_memory()
    assert MultiPartParser.spool_max_size > server_upload_cap_mb() * 1024 * 1024
    assert parse_upload(size) == (False, size)


@pytest.mark.parametrize(("setting", "expected"), [("7", 7), ("5000", None)])
def test_each_uploader_is_limited_by_the_setting_within_the_servers_cap(monkeypatch, dashboard_env, setting, expected):
    monkeypatch.setenv("FUSION_UPLOAD_MAX_MB", setting)
    expected = expected or server_upload_cap_mb()
    assert upload_limit_mb() == expected
    at = open_page("predict")
    for key in ("predict_image", "predict_audio"):
        assert at.file_uploader(key=key).proto.max_upload_size_mb == expected
