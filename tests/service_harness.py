"""Running a service app in-process against the real broker and database, isolated by a unique
topic suffix and database name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from shared.kafka import ensure_topics
from shared.topics import platform_topics


async def create_suffixed_topics(bootstrap: str, suffix: str, partitions: int = 3) -> None:
    await ensure_topics(bootstrap, platform_topics(partitions=partitions, suffix=suffix))


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running (broker, consumers, relays) and a client to call it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
            yield client
