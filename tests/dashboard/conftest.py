"""Dashboard fixtures on the shared small demo: environment variables, the app in AppTest, a live
server and a headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from tests.conftest import SmallDemo

APP = str(PROJECT_ROOT / "dashboard" / "app.py")


@pytest.fixture(scope="session")
def small_demo_env(small_demo_files: SmallDemo, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables pointing the dashboard at the small demo, with private caches."""
    return small_demo_files.env(tmp_path_factory.mktemp("dashboard"))


@pytest.fixture
def dashboard_env(small_demo_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in small_demo_env.items():
        monkeypatch.setenv(name, value)
    return small_demo_env


@dataclass
class LiveServer:
    url: str
    pid: int


def live_dashboard(
    env: dict[str, str], log_dir: Path, host: str = "127.0.0.1", port: int | None = None, **options
) -> Iterator[LiveServer]:
    """A real ``streamlit run`` on ``host:port`` (a free port by default) with ``env``, stopped afterwards.

    ``options`` go to :func:`bench.server.start_dashboard` (``streamlit_options``, ``app_arguments``).
    """
    from bench.server import CHROMIUM, free_port, start_dashboard, stop_dashboard, wait_healthy

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium to run browser tests)")
    pytest.importorskip("playwright.sync_api", reason="the playwright python package is not installed")
    port = port or free_port()
    url = f"http://{host}:{port}"
    with open(log_dir / "streamlit.log", "wb") as log:
        process = start_dashboard(port, env, log, host=host, **options)
        try:
            wait_healthy(url, process)
            yield LiveServer(url, process.pid)
        finally:
            stop_dashboard(process)


@pytest.fixture(scope="module")
def live_server(small_demo_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One dashboard server per test module (browser tests), stopped afterwards."""
    yield from live_dashboard(small_demo_env, tmp_path_factory.mktemp("server"))


def run_dashboard(
    page: str | None = None,
    *,
    user: dict | None = None,
    secrets: dict | None = None,
    query: dict[str, str] | None = None,
):
    """The dashboard in AppTest, run once (then switched to ``pages/<page>.py``), with ``st.user``,
    secrets sections and URL parameters as given; no exception may escape."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120)
    if user is not None:
        at.user = user
    for section, values in (secrets or {}).items():
        at.secrets[section] = values
    at.query_params.update(query or {})
    at.run()
    if page is not None:
        at.switch_page(f"../pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium for a module's browser tests (skipped where there is none)."""
    from bench.server import CHROMIUM, CHROMIUM_ARGS, browser_missing

    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
