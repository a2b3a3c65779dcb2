"""Sign-in end to end: a real OpenID provider on localhost, a real server, headless Chromium.

The provider is oidc-provider-mock (any client id/secret; its authorize page asks for the
user's ``sub``, used here as the e-mail). Streamlit gets its own secrets file through
``--secrets.files``. One host name, ``localhost``, is used for the app, its redirect_uri and
the provider: the sign-in state cookie is set for the host the browser used, so mixing
``127.0.0.1`` and ``localhost`` silently loses the sign-in.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from bench.server import free_port
from tests.dashboard.conftest import LiveServer, live_dashboard

pytestmark = pytest.mark.browser

ALLOWED = ["alice@example.com", "@example.org"]


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """An OpenID provider on localhost; alice has a name and a verified address."""
    mock = pytest.importorskip("oidc_provider_mock")
    httpx = pytest.importorskip("httpx")
    port = free_port()
    url = f"http://localhost:{port}"
    with mock.run_server_in_thread(port=port):
        claims = {"email": "alice@example.com", "name": "Alice Example", "email_verified": True}
        assert httpx.put(f"{url}/users/{quote('alice@example.com')}", json=claims).status_code == 204
        yield url


def write_secrets(path: Path, app_port: int, provider_url: str) -> Path:
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "fusion-lens"\n'
        'client_secret = "not-a-secret"\n'
        f'server_metadata_url = "{provider_url}/.well-known/openid-configuration"\n'
        "\n[access]\n"
        "allowed = [" + ", ".join(f'"{entry}"' for entry in ALLOWED) + "]\n"
    )
    return path


@pytest.fixture(scope="module")
def server(provider, small_demo_env, tmp_path_factory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("sign-in")
    port = free_port()
    secrets_file = write_secrets(folder / "secrets.toml", port, provider)  # before the server starts
    yield from live_dashboard(
        small_demo_env, folder, host="localhost", port=port, streamlit_options=["--secrets.files", str(secrets_file)]
    )


@pytest.fixture(scope="module")
def browser(server, chromium):
    return chromium  # the server first: its start-up is not the browser's


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1600})  # a fresh browser: no cookies
    page = context.new_page()
    page.set_default_timeout(120_000)
    yield page
    context.close()


def settled(page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', state="attached")


def sign_in(page, server: LiveServer, provider: str, email: str) -> None:
    page.goto(server.url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{provider}/oauth2/authorize?**")
    page.get_by_placeholder("sub").fill(email)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(f"{server.url}/**")
    settled(page)


def test_signed_out_browser_sees_only_the_sign_in_screen(server, page):
    for path in ("", "predict", "train"):  # deep links too
        page.goto(f"{server.url}/{path}")
        page.get_by_role("button", name="Sign in").wait_for()
        settled(page)
        assert page.get_by_role("heading", name="Fusion Lens").count() == 1
        for heading in ("Overview", "Predict", "Train"):
            assert page.get_by_role("heading", name=heading, exact=True).count() == 0
        assert page.locator('[data-testid="stSidebarNav"]').count() == 0
        assert page.locator('[data-testid="stSelectbox"]').count() == 0


def test_an_allowed_user_signs_in_and_sees_the_demo(server, provider, page):
    sign_in(page, server, provider, "alice@example.com")
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    page.get_by_text("Sample gallery").wait_for()
    assert page.get_by_text("Signed in as alice@example.com").count() == 1
    page.goto(f"{server.url}/predict")  # a deep link in the same browser: still signed in
    page.get_by_role("heading", name="Predict", exact=True).wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_user_outside_the_allow_list_is_refused(server, provider, page):
    sign_in(page, server, provider, "mallory@evil.test")
    page.get_by_role("heading", name="Access refused").wait_for()
    assert page.get_by_text("mallory@evil.test is not allowed").count() == 1
    assert page.get_by_role("button", name="Sign out").count() == 1
    page.goto(f"{server.url}/compare")
    page.get_by_role("heading", name="Access refused").wait_for()
    assert page.get_by_role("heading", name="Compare", exact=True).count() == 0
