"""Security of every page: response headers (a strict CSP, no inline script or style), signed
cookies (CSRF token, receipt, tracking session), and the client's address from trusted proxies.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Adds the security headers to every response (pure ASGI: nothing buffered)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = list(SECURITY_HEADERS)
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


Network = IPv4Network | IPv6Network


def parse_networks(entries: Sequence[str]) -> list[Network]:
    return [ip_network(entry, strict=False) for entry in entries]


def client_address(request: Request, trusted: Sequence[Network]) -> str:
    """The citizen's address: the peer's, unless the peer is a trusted proxy, in which case the
    right-most address of `X-Forwarded-For` that is not itself a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _valid(hop):
            return peer
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _valid(address: str) -> bool:
    try:
        ip_address(address)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


@dataclass(frozen=True)
class CookieNames:
    csrf: str
    receipt: str
    tracking: str


class Cookies:
    """Signed cookies: HttpOnly, SameSite=Lax, Secure when configured (then `__Host-` names)."""

    def __init__(self, secret_key: str, *, secure: bool) -> None:
        self.secure = secure
        prefix = "__Host-" if secure else ""
        self.names = CookieNames(
            csrf=f"{prefix}portal_csrf",
            receipt=f"{prefix}portal_receipt",
            tracking=f"{prefix}portal_tracking",
        )
        self._serializer = URLSafeTimedSerializer(secret_key)

    # --- signed values ------------------------------------------------------------------------

    def sign(self, value: Any, purpose: str) -> str:
        return self._serializer.dumps(value, salt=purpose)

    def unsign(self, token: str | None, purpose: str, max_age: int) -> Any | None:
        """The signed value, or None if missing, forged or older than `max_age` seconds."""
        if not token:
            return None
        try:
            return self._serializer.loads(token, salt=purpose, max_age=max_age)
        except BadSignature:  # SignatureExpired is one
            return None

    def set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")

    # --- CSRF (signed double submit) ----------------------------------------------------------

    def csrf_cookie(self, request: Request) -> tuple[str, bool]:
        """The browser's CSRF cookie value, or a new one (then True: it must be set)."""
        current = request.cookies.get(self.names.csrf)
        if current and 20 <= len(current) <= 100:
            return current, False
        return secrets.token_urlsafe(24), True

    def csrf_field(self, cookie_value: str) -> str:
        """The hidden form field that goes with the cookie (signed, time-stamped)."""
        return self.sign(cookie_value, "csrf")

    def csrf_valid(self, request: Request, field_value: str | None, max_age: int) -> bool:
        cookie_value = request.cookies.get(self.names.csrf)
        signed = self.unsign(field_value, "csrf", max_age)
        return (
            bool(cookie_value)
            and isinstance(signed, str)
            and secrets.compare_digest(signed, cookie_value or "")
        )
