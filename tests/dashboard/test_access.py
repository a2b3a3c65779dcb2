"""The sign-in gate, driven with AppTest (no provider): who sees the dashboard, who is refused.

The same gate against a real OpenID provider in Chromium is in ``test_sign_in_browser.py``.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.access import auth_problem, is_allowed
from tests.dashboard.conftest import run_dashboard

AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "k" * 32,
    "client_id": "fusion-lens",
    "client_secret": "s",
    "server_metadata_url": "http://localhost:1/.well-known/openid-configuration",
}
ALLOWED = ["alice@example.com", "@example.org"]


def run_app(user: dict, auth: dict | None = AUTH, page: str | None = None):
    secrets = {"access": {"allowed": ALLOWED}, **({"auth": auth} if auth is not None else {})}
    return run_dashboard(page, user=user, secrets=secrets)


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


@pytest.mark.parametrize(
    ("email", "allowed"),
    [
        ("alice@example.com", True),
        ("ALICE@Example.com", True),
        ("bob@example.org", True),
        ("eve@sub.example.org", False),  # a domain entry does not cover its subdomains
        ("mallory@evil.test", False),
        ("alice@example.com.evil.test", False),
        ("example.org", False),
        ("a@b@example.org", False),
        ("", False),
        (None, False),
    ],
)
def test_the_allow_list_matches_addresses_and_whole_domains(email, allowed):
    assert is_allowed(email, ALLOWED) is allowed


def test_an_unsafe_auth_section_is_named():
    assert auth_problem(AUTH) is None
    assert "cookie_secret" in auth_problem({**AUTH, "cookie_secret": "short"})
    assert "client_secret" in auth_problem({k: v for k, v in AUTH.items() if k != "client_secret"})
    assert "oauth2callback" in auth_problem({**AUTH, "redirect_uri": "http://localhost:8501/"})


def test_without_an_auth_section_the_demo_is_open(dashboard_env):
    at = run_app({}, auth=None)
    assert titles(at) == ["Overview"]
    assert "Sign in" not in buttons(at)


def test_signed_out_sees_only_the_sign_in_screen_on_every_page(dashboard_env):
    for page in (None, "predict", "train"):
        at = run_app({"is_logged_in": False}, page=page)
        assert titles(at) == ["Fusion Lens"]
        assert buttons(at) == ["Sign in"]
        assert not at.sidebar.selectbox and not at.multiselect  # no pickers, no data


def test_an_allowed_user_sees_the_dashboard_and_can_sign_out(dashboard_env):
    at = run_app({"is_logged_in": True, "email": "bob@example.org", "email_verified": True})
    assert titles(at) == ["Overview"]
    assert any("Signed in as bob@example.org" in c.value for c in at.sidebar.caption)
    assert "Sign out" in buttons(at)


@pytest.mark.parametrize(
    "user",
    [
        {"is_logged_in": True, "email": "mallory@evil.test"},
        {"is_logged_in": True, "email": "eve@sub.example.org"},
        {"is_logged_in": True, "email": "alice@example.com", "email_verified": False},
        {"is_logged_in": True},
    ],
)
def test_a_user_outside_the_allow_list_is_refused_with_a_sign_out_button(dashboard_env, user):
    for page in (None, "explain"):
        at = run_app(user, page=page)
        assert titles(at) == ["Access refused"]
        assert buttons(at) == ["Sign out"]
        assert not at.sidebar.selectbox


def test_a_misconfigured_auth_section_closes_the_dashboard(dashboard_env):
    at = run_app({"is_logged_in": True, "email": "alice@example.com"}, auth={**AUTH, "cookie_secret": "too-short"})
    assert not at.title and not at.button
    assert any("misconfigured" in e.value and "cookie_secret" in e.value for e in at.error)


def test_an_empty_allow_list_lets_nobody_in(dashboard_env):
    at = run_dashboard(user={"is_logged_in": True, "email": "alice@example.com"}, secrets={"auth": AUTH})
    assert titles(at) == ["Access refused"]
