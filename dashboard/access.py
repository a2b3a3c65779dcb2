"""Who may use the dashboard: Streamlit's OpenID Connect sign-in plus an e-mail allow-list.

Configured in ``.streamlit/secrets.toml`` (found relative to the working directory of
``streamlit run``; never committed, never baked into an image)::

    [auth]                       # absent: sign-in is off and everyone is "local" (the demo)
    redirect_uri = "https://lens.example.com/oauth2callback"
    cookie_secret = "..."        # at least 32 random characters
    client_id = "..."
    client_secret = "..."
    server_metadata_url = "https://idp.example.com/.well-known/openid-configuration"

    [access]                     # our own section: [auth] is handed to Authlib as it is
    allowed = ["alice@example.com", "@example.org"]   # an address, or a whole @domain

:func:`require_access` runs in ``dashboard/app.py`` before ``st.navigation``, so it guards
every page and every deep link. It fails closed: an ``[auth]`` section Streamlit could not
use safely stops the app with what to fix, and with an empty allow-list nobody gets in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import streamlit as st

from core.settings import LOCAL_USER

REQUIRED_AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
MIN_COOKIE_SECRET_CHARS = 32


def _secrets_section(name: str) -> Mapping | None:
    """A section of the secrets file, or ``None`` (also when there is no secrets file at all)."""
    try:
        section = st.secrets.get(name)
    except FileNotFoundError:  # Streamlit's "no secrets file" error derives from it
        return None
    return section if isinstance(section, Mapping) else None


def auth_problem(auth: Mapping) -> str | None:
    """What makes an ``[auth]`` section unsafe or unusable, or ``None`` when it is fine."""
    missing = [key for key in REQUIRED_AUTH_KEYS if not str(auth.get(key, "")).strip()]
    if missing:
        return f"[auth] in .streamlit/secrets.toml lacks {', '.join(missing)}."
    if len(str(auth["cookie_secret"])) < MIN_COOKIE_SECRET_CHARS:
        return (
            f"[auth] cookie_secret must be at least {MIN_COOKIE_SECRET_CHARS} random characters "
            '(python -c "import secrets; print(secrets.token_urlsafe(32))").'
        )
    if not str(auth["redirect_uri"]).rstrip("/").endswith("/oauth2callback"):
        return "[auth] redirect_uri must be this app's public address followed by /oauth2callback."
    return None


def sign_in_enabled() -> bool:
    """Whether ``.streamlit/secrets.toml`` has an ``[auth]`` section (usable or not)."""
    return _secrets_section("auth") is not None


def allowed_entries() -> list[str]:
    """``[access] allowed``: lower-cased addresses and ``@domain`` entries."""
    raw = (_secrets_section("access") or {}).get("allowed", [])
    if isinstance(raw, str):
        raw = [raw]
    return [str(entry).strip().lower() for entry in raw if str(entry).strip()]


def is_allowed(email: str | None, entries: Iterable[str]) -> bool:
    """``email`` matches an exact address or an ``@domain`` entry (that domain only, not its
    subdomains); case does not matter."""
    if not email or email.count("@") != 1:
        return False
    email = email.strip().lower()
    domain = "@" + email.split("@")[1]
    return any(entry == email or (entry.startswith("@") and entry == domain) for entry in entries)


def current_user() -> str:
    """Who is using this session: the signed-in e-mail, or ``local`` when sign-in is off."""
    if not sign_in_enabled():
        return LOCAL_USER
    return str(st.user.get("email") or LOCAL_USER)


def owner_filter() -> str | None:
    """Whose work this session may see and cancel: the signed-in user's, or everyone's when
    sign-in is off (one local user)."""
    return current_user() if sign_in_enabled() else None


def _sign_in_screen() -> None:
    st.title("Fusion Lens")
    st.write("Sign in to continue.")
    if st.button("Sign in", type="primary", icon=":material/login:", key="access_sign_in"):
        st.login()
    st.stop()


def _refused_screen(email: str | None) -> None:
    st.title("Access refused")
    st.error(
        f"{email or 'This account'} is not allowed to use this dashboard. Ask its administrator to add you.",
        icon=":material/block:",
    )
    if st.button("Sign out", icon=":material/logout:", key="access_sign_out_refused"):
        st.logout()
    st.stop()


def require_access() -> None:
    """Let the page run only for a signed-in, allowed user (everyone when sign-in is off).

    Otherwise draws the sign-in screen, the refusal (with a sign-out button) or the
    configuration problem, and stops the script.
    """
    auth = _secrets_section("auth")
    if auth is None:
        return
    problem = auth_problem(auth)
    if problem is not None:
        st.error(f"Sign-in is misconfigured, so the dashboard is closed. {problem}", icon=":material/lock:")
        st.stop()
    if not st.user.get("is_logged_in", False):
        _sign_in_screen()
    email = st.user.get("email")
    # A provider that says the address is unverified must not get past the allow-list.
    if st.user.get("email_verified") is False or not is_allowed(email, allowed_entries()):
        _refused_screen(email)
    with st.sidebar:
        st.caption(f":material/person: Signed in as {email}")
        if st.button("Sign out", icon=":material/logout:", key="access_sign_out"):
            st.logout()
