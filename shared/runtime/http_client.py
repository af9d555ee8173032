"""An aiohttp client session for the adapters that call an HTTP API once or more per dossier (the
national portal's sync, the SMS gateway). aiohttp spends about a tenth of httpx's CPU on a request
(`bench/bench_http_clients.py`: 0.2 against 1.8 ms, a small JSON POST to a local server).
"""

from __future__ import annotations

from typing import Any

import aiohttp

# What a call raises when the peer is unreachable, times out or breaks the connection.
CALL_FAILURES: tuple[type[Exception], ...] = (aiohttp.ClientError, TimeoutError)


class LazySession:
    """One `aiohttp.ClientSession`, made on first use: aiohttp wants it made in the running loop,
    and the adapters are built before it runs. Keeps up to `max_connections` open."""

    def __init__(self, *, timeout: float, max_connections: int = 20, **options: Any) -> None:
        self._timeout = timeout
        self._max_connections = max_connections
        self._options = options
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                **self._options,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
