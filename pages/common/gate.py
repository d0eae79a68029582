"""The password gate (see :mod:`engine.auth`): asked before any page runs whenever a password is
configured, and always when the app listens beyond this machine. Without a configured password
an exposed app shows how to set one and serves nothing else."""

from __future__ import annotations

import hashlib
import time

import streamlit as st

from engine import auth

_KEY = "_fedmosaic_auth"


def _secret() -> str | None:
    try:
        value = st.secrets.get("password_hash")
    except Exception:  # noqa: BLE001 - no secrets file is the usual case
        return None
    return str(value) if value else None


def require_login() -> None:
    """Return when this session may use the app; otherwise draw the sign-in form (or the reason
    the app cannot serve) and stop the script."""
    stored = auth.configured_hash(_secret())
    address = st.get_option("server.address")
    if not auth.gate_needed(address, stored):
        return
    if stored is None:
        st.error(
            f"This FedMosaic server listens on {address or 'every network interface'}, so other machines "
            f"can reach it, and no password is set. Whoever runs it: set {auth.ENV_HASH} (make the "
            f"value with `python -m engine hash-password`) or `password_hash` in "
            f".streamlit/secrets.toml, and restart; or bind to 127.0.0.1.",
            icon=":material/lock:",
        )
        st.stop()
    try:
        auth.check_hash(stored)
    except auth.PasswordHashError as exc:
        st.error(f"The configured password cannot be used: {exc}.", icon=":material/lock:")
        st.stop()
    token = hashlib.sha256(stored.encode()).hexdigest()
    if st.session_state.get(_KEY) == token:
        return
    st.title("FedMosaic")
    with st.form("fedmosaic-sign-in"):
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        if auth.verify(password, stored):
            st.session_state[_KEY] = token
            st.rerun()
        time.sleep(1.0)  # slows guessing; scrypt already costs ~0.1 s per try
        st.error("Wrong password.", icon=":material/lock:")
    st.stop()


def signed_in() -> bool:
    """Whether this session passed the gate (a sign-out button is shown then)."""
    return _KEY in st.session_state


def sign_out() -> None:
    """Forget this session's sign-in."""
    st.session_state.pop(_KEY, None)
