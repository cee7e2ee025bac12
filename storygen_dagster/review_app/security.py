"""Who may decide, and that a form came from our page: a reviewer signs in with
STORYGEN_REVIEW_TOKEN and gets a signed session cookie (HttpOnly, SameSite=Strict); every
form carries a CSRF token bound to that session, and a cross-origin Origin is refused.
Nothing is kept server-side: changing the token ends every session."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

COOKIE = "storygen_review"
NAME = re.compile(r"^[\w .@'-]{1,80}$")


@dataclass(frozen=True)
class Session:
    name: str
    nonce: str


class Signer:
    def __init__(self, token: str):
        if not token:
            raise ValueError("a reviewer token is required")
        self._token = token.encode()
        self._key = hashlib.sha256(b"storygen-review-session|" + self._token).digest()

    def _mac(self, *parts: str) -> str:
        return hmac.new(self._key, "|".join(parts).encode(), hashlib.sha256).hexdigest()

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token)

    def session_cookie(self, name: str) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{name.encode().hex()}.{self._mac('session', nonce, name)}"

    def session(self, cookie: str | None) -> Session | None:
        try:
            nonce, name_hex, mac = (cookie or "").split(".")
            name = bytes.fromhex(name_hex).decode()
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac("session", nonce, name)):
            return None
        return Session(name, nonce) if NAME.match(name) else None

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.nonce)

    def csrf_ok(self, session: Session, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.csrf(session).encode())


def same_origin(origin: str | None, host: str | None) -> bool:
    """Browsers send Origin on form posts; a post from another site's page is refused. No
    Origin (an old browser, curl) falls back on the CSRF token alone."""
    if not origin or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == (host or "")
