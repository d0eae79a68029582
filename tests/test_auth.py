"""The password gate: the hash (scrypt, constant-time check), when it is asked, and the app
refusing to serve anything before it (AppTest)."""

from __future__ import annotations

import pytest
from streamlit import config as st_config

from engine import auth
from tests.test_app_support import app

FAST = {"n": 2**10}  # the stored parameters travel with the hash; the tests need not be slow
PASSWORD = "correct horse battery"


def test_hash_verifies_its_password_only():
    stored = auth.hash_password(PASSWORD, **FAST)
    assert stored.startswith("scrypt$1024$8$1$")
    assert auth.verify(PASSWORD, stored)
    assert not auth.verify(PASSWORD + " ", stored)
    assert not auth.verify("", stored)
    assert auth.hash_password(PASSWORD, **FAST) != stored  # a fresh salt each time


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plaintext",
        "scrypt$1024$8$1$c2FsdA",
        "scrypt$1000$8$1$c2FsdA$ZGln",
        "scrypt$x$8$1$c2FsdA$ZGln",
        "bcrypt$1024$8$1$c2FsdA$ZGln",
    ],
)
def test_a_damaged_or_foreign_hash_is_refused_not_trusted(bad):
    with pytest.raises(auth.PasswordHashError):
        auth.verify(PASSWORD, bad)


@pytest.mark.parametrize(
    ("address", "stored", "needed"),
    [
        ("127.0.0.1", None, False),
        ("localhost", None, False),
        ("::1", None, False),
        ("127.0.0.2", None, False),
        ("0.0.0.0", None, True),
        ("192.168.1.20", None, True),
        ("", None, True),
        (None, None, True),
        ("127.0.0.1", "scrypt$...", True),
    ],
)
def test_a_password_is_needed_when_exposed_or_configured(address, stored, needed):
    assert auth.gate_needed(address, stored) is needed


@pytest.fixture
def exposed():
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", before)


def _page_text(at) -> str:
    return " ".join(
        [m.value for m in at.markdown] + [t.value for t in at.title] + [e.value for e in at.error]
    )


def test_exposed_without_a_password_serves_nothing_but_how_to_set_one(exposed, monkeypatch):
    monkeypatch.delenv(auth.ENV_HASH, raising=False)
    at = app()
    assert not at.exception
    assert len(at.error) == 1 and "no password is set" in at.error[0].value
    assert "hash-password" in at.error[0].value
    assert not at.button and not at.text_input and not at.sidebar.markdown


def test_exposed_with_a_password_asks_for_it_before_any_page(exposed, monkeypatch):
    monkeypatch.setenv(auth.ENV_HASH, auth.hash_password(PASSWORD, **FAST))
    at = app()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Password"]
    assert "Start from a scenario" not in _page_text(at)
    at.text_input[0].input("wrong password")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error)
    assert "Start from a scenario" not in _page_text(at)
    at.text_input[0].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert any(s.value == "Start from a scenario" for s in at.subheader)
