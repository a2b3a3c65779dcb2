"""Start ``streamlit run dashboard/app.py`` as a child process, wait until it answers, read its memory.

Shared by the browser tests and the dashboard and load benchmarks. It only launches and
probes a process (and names the headless Chromium they drive), so ``core`` still imports
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
from typing import IO, Any

from core.settings import PROJECT_ROOT, settings

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


def browser_missing() -> str | None:
    """Why a browser benchmark cannot run here (no Chromium, no playwright), or ``None``."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (install Debian's chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright python package is not installed"
    return None


def file_input(page, label: str):
    """The file input of the ``st.file_uploader`` labelled ``label``.

    Found by its label, never by position: while Streamlit re-renders, an uploader can be
    briefly absent from the page and ``.first`` / ``.nth(i)`` would then pick another one
    (a PNG meant for "Image" once landed in "Audio" this way under load).
    """
    uploader = page.locator('[data-testid="stFileUploader"]').filter(
        has=page.locator('[data-testid="stWidgetLabel"]').get_by_text(label, exact=True)
    )
    return uploader.locator('input[type="file"]')


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


def bench_server_env(options: Mapping[str, Any], scratch: Path) -> dict[str, str]:
    """Variables for a benchmarked server: the ``data`` / ``checkpoints`` options (default: the
    demo), runs under ``scratch`` and the ``cache_dir`` option, by default a fresh one under
    ``scratch``, so no figure depends on an earlier run unless that is what is measured."""
    config = settings()
    return {
        "FUSION_DEMO_DATA": str(Path(options.get("data") or config.demo_data).resolve()),
        "FUSION_CHECKPOINTS": str(Path(options.get("checkpoints") or config.checkpoints).resolve()),
        "FUSION_CACHE_DIR": str(Path(options.get("cache_dir") or scratch / "cache").resolve()),
        "FUSION_RUNS": str(scratch / "runs"),
    }


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


def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from ``/proc/<pid>/task/<tid>/children``."""
    tree = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            tree += _process_tree(int(child))
    return tree


def _peak_rss_mib(pid: int) -> float | None:
    """``VmHWM`` (peak resident set) of a live process in MiB, ``None`` if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def memory_peaks(pid: int) -> dict[str, Any]:
    """Peak RSS of the server and of its descendants (e.g. background training runs)."""
    children = [p for p in _process_tree(pid) if p != pid]
    child_peaks = [peak for peak in map(_peak_rss_mib, children) if peak is not None]
    server = _peak_rss_mib(pid) or 0.0
    return {
        "server_peak_rss_mib": round(server, 1),
        "children": len(child_peaks),
        "children_peak_rss_mib": round(sum(child_peaks), 1),
        "total_peak_rss_mib": round(server + sum(child_peaks), 1),
    }
