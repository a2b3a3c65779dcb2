"""Start ``streamlit run dashboard/app.py`` as a child process and wait until it answers.

Shared by the browser tests and the dashboard benchmark. It only launches and probes a
process (and names the headless Chromium both drive), so ``core`` still imports
neither Streamlit nor the dashboard.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from core.settings import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags for a sandbox-less container: no GPU compositing, no background traffic to Google."""


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dashboard(
    port: int,
    env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
    *,
    host: str = "127.0.0.1",
    streamlit_options: Sequence[str] = (),
    app_arguments: Sequence[str] = (),
) -> subprocess.Popen:
    """``streamlit run dashboard/app.py`` on ``host:port``, headless, from the project root.

    Args:
        port: where it listens.
        env: variables added to this process's environment (``FUSION_CHECKPOINTS`` etc.).
        log: where its stdout and stderr go (default: discarded).
        host: the address it binds; sign-in needs ``localhost`` (one host name everywhere).
        streamlit_options: more Streamlit flags, e.g. ``["--secrets.files", path]``.
        app_arguments: the dashboard's own arguments (``--data-root DIR`` ...).
    """
    command = [
        sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        *streamlit_options,
        *(["--", *app_arguments] if app_arguments else []),
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        stdout=log if log is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    """Return once ``{url}/_stcore/health`` answers 200.

    Raises:
        RuntimeError: the server exited first.
        TimeoutError: it did not answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not become healthy in {timeout:.0f} s")


def stop_dashboard(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate the server, killing it if it does not exit within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
