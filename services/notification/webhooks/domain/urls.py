"""Which subscriber URLs the platform may call (server-side request forgery rules; pure).

Outside development: HTTPS only, on port 443 (also 80 outside production), and the host must
resolve to public addresses only — never private, loopback, link-local (cloud metadata at
169.254.169.254), shared, reserved or multicast, nor an IPv6 form that carries such an IPv4
address (IPv4-mapped `::ffff:0:0/96`, 6to4 `2002::/16`, NAT64 `64:ff9b::/96`; Teredo
`2001::/32` and local-use NAT64 `64:ff9b:1::/48` are refused outright).

The check (`services.notification.webhooks.adapters.url_check`, which resolves the host) runs at
registration, and the sender connects only to addresses it checked: the lookup that is checked is
the one connected to, so a name that answers differently on a second lookup (DNS rebinding)
cannot slip an inside address in. In development and tests (`UrlRules.local`) plain HTTP, local
addresses and any port are allowed, for local receivers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

HTTPS_PORT = 443
HTTP_PORT = 80
# The IPv6 prefixes that carry an IPv4 address in their last 32 bits (RFC 6052), and those
# refused whatever they carry (RFC 8215 local-use NAT64; Teredo hides its client address).
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


class UrlRefused(ValueError):
    """A subscriber URL the platform will not call; the message says why (for the agency)."""


@dataclass(frozen=True)
class UrlRules:
    """What the environment allows (the defaults are production's)."""

    private_addresses: bool = False  # loopback, private, link-local... (local receivers)
    plain_http: bool = False
    ports: frozenset[int] | None = frozenset({HTTPS_PORT})  # None: any port

    @classmethod
    def for_environment(cls, *, production: bool, allow_private: bool) -> UrlRules:
        """Production: https on 443 to public addresses. Elsewhere also port 80, and with
        `allow_private` (development and tests only) anything local: plain http, any port."""
        if allow_private and not production:
            return cls.local()
        return cls(ports=frozenset({HTTPS_PORT} if production else {HTTPS_PORT, HTTP_PORT}))

    @classmethod
    def local(cls) -> UrlRules:
        return cls(private_addresses=True, plain_http=True, ports=None)


def check_form(url: str, rules: UrlRules) -> tuple[str, int]:
    """Scheme, credentials, host and port of the URL (pure); returns (host, port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from exc
    allowed_schemes = {"https", "http"} if rules.plain_http else {"https"}
    if parts.scheme not in allowed_schemes:
        raise UrlRefused("the URL must use https")
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    if parts.username or parts.password:
        raise UrlRefused("credentials in the URL are not allowed; use the signature")
    if parts.fragment:
        raise UrlRefused("the URL must not have a fragment")
    port = port or (HTTPS_PORT if parts.scheme == "https" else HTTP_PORT)
    if rules.ports is not None and port not in rules.ports:
        allowed = " or ".join(str(p) for p in sorted(rules.ports, reverse=True))
        raise UrlRefused(f"the port must be {allowed} (not {port})")
    return parts.hostname, port


def ip_literal(host: str) -> bool:
    """Whether the URL's host is an address rather than a name (no lookup to check)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_address(address: str, rules: UrlRules) -> None:
    """Refuse an address that is not globally routable (pure), also when an IPv6 form carries a
    non-public IPv4 address."""
    if rules.private_addresses:
        return
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo or ip in NAT64_LOCAL_USE:
            raise UrlRefused(f"the host resolves to a non-public address ({ip})")
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            _check_public(embedded, f"{embedded} in {ip}")
            if ip.sixtofour is None:  # mapped or NAT64: the IPv4 address is the destination
                return
    _check_public(ip, str(ip))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def _check_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, shown: str) -> None:
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        raise UrlRefused(f"the host resolves to a non-public address ({shown})")
