"""Which subscriber URLs the platform may call (server-side request forgery rules; pure).

Outside development: HTTPS only, and the host must resolve to public addresses only — never
private, loopback, link-local (cloud metadata at 169.254.169.254), shared, reserved or multicast.
The check (`services.notification.webhooks.adapters.url_check`, which resolves the host) runs at
registration and again before attempts, at most every 30 s per URL (a DNS name can change what it
points to). In development (`allow_private`) plain HTTP and local addresses are allowed, for local
receivers and tests.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class UrlRefused(ValueError):
    """A subscriber URL the platform will not call; the message says why (for the agency)."""


def check_form(url: str, *, allow_private: bool) -> tuple[str, int]:
    """Scheme, credentials, host and port of the URL (pure); returns (host, port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from exc
    allowed_schemes = {"https", "http"} if allow_private else {"https"}
    if parts.scheme not in allowed_schemes:
        raise UrlRefused("the URL must use https")
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    if parts.username or parts.password:
        raise UrlRefused("credentials in the URL are not allowed; use the signature")
    if parts.fragment:
        raise UrlRefused("the URL must not have a fragment")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_address(address: str, *, allow_private: bool) -> None:
    """Refuse an address that is not globally routable (pure)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if allow_private:
        return
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        raise UrlRefused(f"the host resolves to a non-public address ({ip})")
