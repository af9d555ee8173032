"""Running a service app in-process against the real broker and database, isolated by a unique
topic suffix and database name."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from services.processing.main import create_app as create_processing
from services.processing.settings import ProcessingSettings
from shared.contracts.topics import platform_topics
from shared.runtime.kafka import ensure_topics

# Settings for a service started in a test: with the consumers' idle long poll (5 s) and
# heartbeat (3 s), a group rebalance (a service's second consumer joining its group at start-up,
# a restarted copy joining or leaving) waits up to 8 s, since a member notices it at its next
# heartbeat and rejoins once its fetch in flight returns.
QUICK_CONSUMERS: dict[str, int] = {
    "consumer_fetch_max_wait_ms": 100,
    "consumer_heartbeat_interval_ms": 100,
    "consumer_idle_fetch_max_wait_ms": 100,
}


async def create_suffixed_topics(bootstrap: str, suffix: str, partitions: int = 3) -> None:
    await ensure_topics(bootstrap, platform_topics(partitions=partitions, suffix=suffix))


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (broker, consumers, relays) and a client to call it.

    Shutdown must finish within a minute; if not, the stacks of every task are printed, so that
    a hang names its culprit instead of timing the whole test run out.
    """
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
            yield client
    finally:
        try:
            await asyncio.wait_for(lifespan.__aexit__(None, None, None), timeout=60)
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack(file=sys.stderr)
            raise


async def processing_on_database(mongo_url: str, database: str, issuer: Any) -> FastAPI:
    """Processing's app on a test database, its indexes made, its lifespan not started (no
    broker, no scanner): the officer API answers from the database alone. `issuer`: the
    `DevIssuer` whose tokens it accepts."""
    app = create_processing(
        ProcessingSettings(
            mongo_url=mongo_url,
            mongo_database=database,
            environment="test",
            jwt_public_key_file=str(issuer.public_key_path),
            scanner_enabled=False,
        )
    )
    await app.state.processing.store.ensure_indexes()
    await app.state.processing.staff.store.ensure_indexes()
    return app
