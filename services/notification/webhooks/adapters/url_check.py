"""The whole subscriber URL check: the form, then every address its host resolves to (DNS); the
rules are `services.notification.webhooks.domain.urls`."""

from __future__ import annotations

import asyncio
import socket

from services.notification.webhooks.domain.urls import UrlRefused, check_address, check_form


async def check_url(url: str, *, allow_private: bool) -> None:
    """The whole check: form, then every address the host resolves to."""
    host, port = check_form(url, allow_private=allow_private)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlRefused(f"the host does not resolve: {host}") from exc
    for info in infos:
        check_address(str(info[4][0]), allow_private=allow_private)
