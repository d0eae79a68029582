"""The app's password: a salted scrypt hash kept by the operator, checked in constant time.

FedMosaic binds to 127.0.0.1. Whoever reaches an app bound to another address can launch, cancel
and delete every run, so :func:`gate_needed` says when a password is required: whenever a hash is
configured, and always when the server listens beyond this machine. Without a hash the app then
refuses to serve (it never runs open to a network by accident).

The hash comes from ``FEDMOSAIC_PASSWORD_HASH`` or Streamlit's secrets (``password_hash`` in
``.streamlit/secrets.toml``); make one with ``python -m engine hash-password``. Only the hash is
stored: scrypt (RFC 7914; n=2**15, r=8, p=1, a 16-byte random salt), compared with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets

ENV_HASH = "FEDMOSAIC_PASSWORD_HASH"
SCHEME = "scrypt"
N, R, P = 2**15, 8, 1
MIN_LENGTH = 10


class PasswordHashError(ValueError):
    """A configured hash that is not one :func:`hash_password` makes."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$digest`` for ``password`` (a fresh random salt unless given)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2**27, dklen=32)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise PasswordHashError(
            "the password hash is not a FedMosaic hash (scrypt$...); make one with "
            "python -m engine hash-password"
        )
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise PasswordHashError(
            "the password hash is damaged; make a new one with python -m engine hash-password"
        ) from None
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        raise PasswordHashError(
            "the password hash has out-of-range parameters; make a new one with "
            "python -m engine hash-password"
        )
    return n, r, p, salt, digest


def check_hash(stored: str) -> None:
    """:raises PasswordHashError: ``stored`` is not a usable hash."""
    _parse(stored)


def verify(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison of the digests)."""
    n, r, p, salt, digest = _parse(stored)
    candidate = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2**27, dklen=len(digest)
    )
    return hmac.compare_digest(candidate, digest)


def configured_hash(secrets_value: str | None = None) -> str | None:
    """The operator's hash: ``FEDMOSAIC_PASSWORD_HASH``, else the app's secret; ``None`` if unset."""
    value = os.environ.get(ENV_HASH) or secrets_value
    return value.strip() if value and value.strip() else None


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only. An empty address
    means every interface (Streamlit's default), so it is not."""
    if not address:
        return False
    host = address.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def gate_needed(address: str | None, stored: str | None) -> bool:
    """A password is asked whenever one is configured, and whenever the server listens beyond
    this machine."""
    return stored is not None or not is_loopback(address)
