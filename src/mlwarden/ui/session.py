"""Browser sessions of the dashboard: a signed cookie after signing in with an API token, and a
per-session CSRF token every form and every state-changing request must echo.

The cookie is ``base64url(json payload) . hex(HMAC-SHA256(secret, payload))``; the payload holds
the token's name (the actor in the audit log), its role, the CSRF token, a random session id and
the issue time, never the API token itself. The secret is 32 random bytes kept in
``<data_dir>/ui-session.key`` (mode 0600), created on first use, so sessions survive a restart
and every replica sharing the data directory accepts them.

A signature alone cannot be withdrawn, so each signed-in session is also a row of
``ui_sessions`` (:class:`SessionTable`, keyed by the SHA-256 of the session id): signing out
deletes the row, and a cookie whose row is gone is refused even though its signature is good.

>>> signer = Signer(b"k" * 32)
>>> value = signer.sign({"n": "alice"})
>>> signer.unsign(value, max_age_s=60)["n"]
'alice'
>>> tampered = value[:-1] + ("A" if value[-1] != "A" else "B")
>>> signer.unsign(tampered, max_age_s=60) is None
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.clock import utcnow
from mlwarden.domain import Role
from mlwarden.store import Store

__all__ = [
    "LOGIN_COOKIE",
    "PREFIX",
    "SESSION_COOKIE",
    "Session",
    "SessionTable",
    "SignInRequired",
    "Signer",
    "load_secret",
]

# where the dashboard's pages are; with the sign-in redirect, known here rather than in
# ``ui.web``, which the server imports only with the pages, at the first request under it
PREFIX = "/ui"

SESSION_COOKIE = "mlw_session"
LOGIN_COOKIE = "mlw_login"
SESSION_MAX_AGE_S = 12 * 3600
LOGIN_MAX_AGE_S = 3600


class SignInRequired(Exception):
    """A page was asked for without a valid session: the handler redirects to the sign-in."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def load_secret(data_dir: Path) -> bytes:
    """The signing key of this data directory, created (0600) when missing."""
    path = data_dir / "ui-session.key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # O_EXCL: when two processes race, the loser reads the winner's key
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class Signer:
    """HMAC-SHA256 signing of small JSON payloads with an issue time."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _mac(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def sign(self, payload: dict[str, Any]) -> str:
        data = {**payload, "iat": int(time.time())}
        body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()
        return f"{body.rstrip('=')}.{self._mac(body.rstrip('='))}"

    def unsign(self, value: str | None, max_age_s: float) -> dict[str, Any] | None:
        """The payload when the signature is good and it is younger than ``max_age_s``."""
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or time.time() - float(data.get("iat", 0)) > max_age_s:
            return None
        return data


@dataclass(frozen=True)
class Session:
    """Who the browser is signed in as, the CSRF token and the id of this session."""

    name: str
    role: Role
    csrf: str
    sid: str

    @property
    def can_operate(self) -> bool:
        return self.role.allows(Role.OPERATOR)

    @classmethod
    def new(cls, name: str, role: Role) -> Session:
        return cls(name, role, secrets.token_urlsafe(24), secrets.token_urlsafe(24))

    def payload(self) -> dict[str, Any]:
        return {"n": self.name, "r": self.role.value, "c": self.csrf, "s": self.sid}

    @classmethod
    def from_payload(cls, data: dict[str, Any] | None) -> Session | None:
        if not data:
            return None
        try:
            return cls(str(data["n"]), Role(data["r"]), str(data["c"]), str(data["s"]))
        except (KeyError, ValueError):
            return None

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(str(sent), self.csrf)

    @property
    def conversation_key(self) -> str:
        """The key of this sign-in's conversation with the assistant (kept in the store): the
        hash of the session id, never the id itself, which would sign a cookie."""
        return f"ui:{_sid_hash(self.sid)}"


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionTable:
    """The server's record of signed-in sessions: started at sign-in, ended at sign-out."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def start(self, session: Session, max_age_s: float = SESSION_MAX_AGE_S) -> None:
        """Remember ``session`` for ``max_age_s``; sessions already expired are forgotten."""
        self.store.start_ui_session(_sid_hash(session.sid), session.name, max_age_s)

    def is_active(self, session: Session) -> bool:
        """True while ``session`` was started here, not ended, and has not expired."""
        row = self.store.ui_session(_sid_hash(session.sid))
        return row is not None and row[0] == session.name and row[1] > utcnow()

    def end(self, session: Session) -> None:
        """Forget ``session``: its cookie is refused from now on, wherever it was copied to, and
        its conversation with the assistant is forgotten too."""
        self.store.end_ui_session(_sid_hash(session.sid))
        self.store.forget_assistant_conversation(session.conversation_key)
