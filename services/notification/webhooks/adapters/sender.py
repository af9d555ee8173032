"""Webhook attempts over HTTP (aiohttp): one signed POST to a subscriber per attempt.

The connections go only to addresses the URL rules allowed, from the same lookup: the
connector's resolver (`PinnedResolver`) resolves the name once, checks every address and hands
exactly those to the connection, which still sends the name in `Host` and as the TLS server name
(SNI) and verifies the certificate against the name. A name answering a public address to a
check and an inside one to the connection (DNS rebinding) therefore reaches nothing.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from services.notification.webhooks.adapters.url_check import UrlChecker
from services.notification.webhooks.domain.queues import QueuedDelivery
from services.notification.webhooks.domain.signing import signature_headers
from services.notification.webhooks.domain.subscriptions import DispatchConfig, is_retryable
from services.notification.webhooks.domain.urls import UrlRefused, UrlRules

USER_AGENT = "DVC-BoKHCN-Webhooks/1.0"
# How long the checked addresses of a name are used for new connections before it is resolved
# (and checked) again: a DNS lookup per attempt costs a third of the throughput.
URL_CHECK_SECONDS = 30


@dataclass(frozen=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None
    retryable: bool


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver for the webhook connections: one lookup, every address checked
    (`UrlRefused` otherwise), and those addresses are the ones connected to."""

    def __init__(self, urls: UrlChecker) -> None:
        self.urls = urls

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for address in await self.urls.addresses(host, port):
            found = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (socket.AF_UNSPEC, found):
                results.append(
                    {
                        "hostname": host,
                        "host": address,
                        "port": port,
                        "family": found,
                        "proto": 0,
                        "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    }
                )
        if not results:
            raise UrlRefused(f"the host has no address of the family asked for: {host}")
        return results

    async def close(self) -> None:
        pass


class WebhookSender:
    """One signed POST to a subscriber; never follows redirects; the answer body is not read.

    aiohttp rather than httpx here: measured on the same receiver, it posts about ten times as
    many requests per CPU second, and this loop is the webhooks' hot path.

    `urls` is the registry's checker (its rules and resolver); without it, the rules follow
    `config.allow_private_urls`. `tls` replaces the system's trusted authorities (tests)."""

    def __init__(
        self,
        config: DispatchConfig,
        urls: UrlChecker | None = None,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.urls = urls or UrlChecker(
            UrlRules.local() if config.allow_private_urls else UrlRules()
        )
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created in the running loop, on first use
            connector_options: dict[str, Any] = {"ssl": self.tls} if self.tls else {}
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.config.max_connections,
                    resolver=PinnedResolver(self.urls),
                    ttl_dns_cache=URL_CHECK_SECONDS,
                    **connector_options,
                ),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"user-agent": USER_AGENT},
            )
        return self._session

    async def send(self, url: str, secret: str, delivery: QueuedDelivery) -> Attempt:
        headers = signature_headers(secret, delivery.event_id, int(time.time()), delivery.body)
        headers["content-type"] = "application/cloudevents+json"
        try:
            # The form (scheme, port) and an address given as the host; a name is resolved and
            # checked by the connector's `PinnedResolver` when it opens a connection.
            self.urls.check_without_lookup(url)
            async with self._client().post(
                url, data=delivery.body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except UrlRefused as exc:  # e.g. the name now points inside: retried, counted as failure
            return Attempt(False, None, f"refused: {exc}", retryable=True)
        except TimeoutError:
            return Attempt(False, None, "timeout", retryable=True)
        except aiohttp.ClientError as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:300], retryable=True)
        if 200 <= status < 300:
            return Attempt(True, status, None, retryable=False)
        return Attempt(False, status, f"HTTP {status}", retryable=is_retryable(status))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
