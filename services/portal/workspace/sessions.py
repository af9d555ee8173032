"""Staff sessions, kept server-side: the provider's tokens and who signed in, keyed by a random
session id. The browser's cookie holds only that id (signed); nothing else leaves the process.

One process's memory: a restart signs everyone out, and several portal replicas need sticky
sessions (or a shared store behind the same interface).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Refresh the access token when it has less than this left, so that it does not expire on its way
# to processing.
REFRESH_MARGIN_SECONDS = 30
# Receipts a counter officer's session keeps for printing.
MAX_RECEIPTS = 20


@dataclass(frozen=True)
class StaffProfile:
    """Who signed in, from the provider's ID token (for display; processing decides on the
    access token)."""

    subject: str
    name: str
    username: str
    unit: str | None
    roles: frozenset[str]

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> StaffProfile:
        roles = claims.get("roles") or []
        username = str(claims.get("preferred_username") or claims.get("sub") or "")
        return cls(
            subject=str(claims.get("sub") or ""),
            name=str(claims.get("name") or username),
            username=username,
            unit=claims.get("unit") or None,
            roles=frozenset(str(role) for role in roles if isinstance(role, str)),
        )


@dataclass
class Tokens:
    access_token: str
    refresh_token: str | None
    id_token: str | None
    expires_at: float  # epoch seconds

    @classmethod
    def from_response(cls, token: dict[str, Any], now: float) -> Tokens:
        expires_at = token.get("expires_at")
        if expires_at is None:
            expires_at = now + float(token.get("expires_in") or 60)
        return cls(
            access_token=str(token["access_token"]),
            refresh_token=token.get("refresh_token"),
            id_token=token.get("id_token"),
            expires_at=float(expires_at),
        )

    def fresh(self, now: float) -> bool:
        return now < self.expires_at - REFRESH_MARGIN_SECONDS


@dataclass
class StaffSession:
    """A browser's session: before sign-in it holds only the sign-in flow's state (Authlib's
    state, nonce and PKCE verifier, in `flow`); after, the tokens and the profile."""

    id: str
    created_at: float
    last_seen: float
    flow: dict[str, Any] = field(default_factory=dict)
    next_path: str = "/can-bo"
    tokens: Tokens | None = None
    profile: StaffProfile | None = None
    refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The counter desk's receipts of this session: dossier code -> tracking secret (to print).
    receipts: dict[str, str] = field(default_factory=dict)

    @property
    def signed_in(self) -> bool:
        return self.tokens is not None and self.profile is not None

    def remember_receipt(self, code: str, secret: str) -> None:
        """Keep a recorded dossier's secret for its receipt (the latest `MAX_RECEIPTS`)."""
        self.receipts.pop(code, None)
        self.receipts[code] = secret
        while len(self.receipts) > MAX_RECEIPTS:
            self.receipts.pop(next(iter(self.receipts)))


class SessionStore:
    """Sessions in memory, ended after `idle_seconds` without a request or `max_seconds` after
    they began; at most `capacity` (the least recently used go first)."""

    def __init__(
        self,
        *,
        idle_seconds: int,
        max_seconds: int,
        capacity: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.capacity = capacity
        self.clock = clock
        self._sessions: OrderedDict[str, StaffSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self) -> StaffSession:
        now = self.clock()
        self._purge(now)
        session = StaffSession(id=secrets.token_urlsafe(32), created_at=now, last_seen=now)
        self._sessions[session.id] = session
        while len(self._sessions) > self.capacity:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> StaffSession | None:
        """The live session with this id (its idle time restarts), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._sessions[session_id]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    def signed_in(
        self, previous: StaffSession, tokens: Tokens, profile: StaffProfile
    ) -> StaffSession:
        """The session after sign-in, under a NEW id (the pre-sign-in id, which a page may have
        leaked, is dropped: no session fixation)."""
        self.drop(previous.id)
        session = self.create()
        session.tokens, session.profile = tokens, profile
        session.next_path = previous.next_path
        return session

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _expired(self, session: StaffSession, now: float) -> bool:
        return (
            now - session.last_seen > self.idle_seconds
            or now - session.created_at > self.max_seconds
        )

    def _purge(self, now: float) -> None:
        """Drop the idle sessions: the least recently used are first, so stop at a live one
        (a session past its maximum age goes when it is next asked for)."""
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if not self._expired(oldest, now):
                return
            del self._sessions[oldest.id]
