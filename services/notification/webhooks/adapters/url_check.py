"""The whole subscriber URL check: the form, then every address its host resolves to (DNS); the
rules are `services.notification.webhooks.domain.urls`.

One `UrlChecker` serves the registry (a URL is checked when registered or changed) and the
sender, whose connections go to the very addresses `addresses` checked (see
`sender.PinnedResolver`). The resolver is injectable: tests answer a name as they need.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from services.notification.webhooks.domain.urls import (
    UrlRefused,
    UrlRules,
    check_address,
    check_form,
    ip_literal,
)

# host, port -> the addresses the name stands for (raises OSError when it does not resolve).
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo), each address once."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class UrlChecker:
    def __init__(self, rules: UrlRules, resolver: Resolver = system_resolver) -> None:
        self.rules = rules
        self.resolver = resolver

    async def check(self, url: str) -> None:
        """The whole check: form, then every address the host resolves to."""
        host, port = check_form(url, self.rules)
        await self.addresses(host, port)

    def check_without_lookup(self, url: str) -> tuple[str, int]:
        """The form, and the address when the host is one (the part that needs no lookup)."""
        host, port = check_form(url, self.rules)
        if ip_literal(host):
            check_address(host, self.rules)
        return host, port

    async def addresses(self, host: str, port: int) -> list[str]:
        """Resolve the host once and check every address; returns them, to connect to those
        and no other (`UrlRefused` if any is not allowed)."""
        if ip_literal(host):
            check_address(host, self.rules)
            return [host]
        try:
            found = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:  # socket.gaierror; a label IDNA refuses
            raise UrlRefused(f"the host does not resolve: {host}") from exc
        if not found:
            raise UrlRefused(f"the host does not resolve: {host}")
        for address in found:
            check_address(address, self.rules)
        return found


async def check_url(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
    """The whole check with the rules of `allow_private` (local receivers) or production's."""
    rules = UrlRules.local() if allow_private else UrlRules()
    await UrlChecker(rules, resolver).check(url)
