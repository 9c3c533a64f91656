"""Who may read a session and post its events: signed session tokens and the service key.

``POST /sessions`` gives a shopper a fresh session id and a token, an HMAC of the id under the
server's secret: any web node holding the secret verifies it without a lookup, so tokens need
no state shared between nodes beyond the secret itself. A shop's backend holds the service
(ingest) key and may post for any session. Sessions below ``public_below`` (recorded or
generated logs replayed for the demo) are public and read-only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

#: Shopper sessions get ids from here up (recorded logs number theirs far below), and below
#: 2^53 so that a browser holds them as exact numbers.
FIRST_SHOPPER_ID = 10**12
LAST_SHOPPER_ID = 2**53 - 1
_VERSION = "v1"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def issue_token(secret: bytes, session: int) -> str:
    """The token of a session: ``v1.<session>.<signature>``."""
    mac = hmac.new(secret, f"session:{session}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac[:24]).decode()
    return f"{_VERSION}.{session}.{signature}"


def token_session(secret: bytes, token: str) -> int | None:
    """The session a token was issued for, or None if it is not one of ours."""
    if not token.isascii():  # compare_digest refuses other strings; no token of ours has one
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit() or len(parts[1]) > 20:
        return None
    session = int(parts[1])
    return session if hmac.compare_digest(issue_token(secret, session), token) else None


class Access(Enum):
    """What a request's credentials allow on one session."""

    GRANTED = "granted"
    MISSING = "missing"  # 401: no credentials where they are needed
    INVALID = "invalid"  # 401: not a token of this server
    OTHER = "other"  # 403: another session's token
    READ_ONLY = "read_only"  # 403: a public session takes no posted events


@dataclass(frozen=True)
class Guard:
    """Checks credentials against the secret, the service key and the public range."""

    secret: bytes
    ingest_key: str | None = None
    public_below: int = FIRST_SHOPPER_ID

    def is_public(self, session: int) -> bool:
        return session < self.public_below

    def is_service(self, bearer: str | None) -> bool:
        key = self.ingest_key
        return bool(key) and bearer is not None and hmac.compare_digest(
            bearer.encode(), key.encode())  # type: ignore[union-attr]

    def issue(self) -> tuple[int, str]:
        """A new shopper session and its token."""
        session = FIRST_SHOPPER_ID + secrets.randbelow(LAST_SHOPPER_ID - FIRST_SHOPPER_ID)
        return session, issue_token(self.secret, session)

    def bearer_session(self, bearer: str | None) -> int | None:
        return token_session(self.secret, bearer) if bearer else None

    def read(self, session: int, bearer: str | None) -> Access:
        """May these credentials read (or watch) the session?"""
        if self.is_public(session) or self.is_service(bearer):
            return Access.GRANTED
        return self._own(session, bearer)

    def write(self, session: int, bearer: str | None) -> Access:
        """May these credentials post the session's events?"""
        if self.is_service(bearer):
            return Access.GRANTED
        if self.is_public(session):
            return Access.READ_ONLY
        return self._own(session, bearer)

    def _own(self, session: int, bearer: str | None) -> Access:
        if not bearer:
            return Access.MISSING
        owner = token_session(self.secret, bearer)
        if owner is None:
            return Access.INVALID
        return Access.GRANTED if owner == session else Access.OTHER


def bearer_of(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def local_secret(directory: Path) -> str:
    """The secret kept in ``directory`` (created, readable by its owner only, on first use),
    so that tokens survive a restart of a one-process runtime."""
    path = directory / "secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = new_secret()
    try:  # O_EXCL: two processes starting at once keep one secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret
