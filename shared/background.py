"""Periodic background jobs of a service (publishers, scanners, gauge refreshers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

log = logging.getLogger(__name__)


@asynccontextmanager
async def periodically(
    name: str, interval: float, job: Callable[[], Awaitable[Any]]
) -> AsyncIterator[None]:
    """Run `job` now and then every `interval` seconds while inside the block. A failing run is
    logged and retried at the next tick; leaving the block cancels the job."""

    async def loop() -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying in %.0f s", name, interval)
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
