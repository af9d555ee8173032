"""The services' uvicorn server: what exists once the app has started is out of the collector's
passes, what comes later is not, and the passes' CPU time is counted."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY

from shared.runtime.service import QuietServer


def gc_seconds() -> float:
    return REGISTRY.get_sample_value("dvc_gc_cpu_seconds_total", {"generation": "2"}) or 0.0


class Node:
    """A container object the collector tracks (a cycle through `self.me`)."""

    def __init__(self) -> None:
        self.me = self


async def test_the_started_app_is_frozen_and_later_garbage_still_collected() -> None:
    made_at_startup: list[Node] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        made_at_startup.append(Node())
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/frozen")
    async def frozen() -> dict[str, bool]:
        return {"startup_node_frozen": not any(o is made_at_startup[0] for o in gc.get_objects())}

    started = asyncio.Event()

    class Server(QuietServer):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            started.set()

    server = Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(started.wait(), 10)
        assert gc.get_freeze_count() > 0
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answer = (await client.get("/frozen")).json()
        # Frozen objects are not in any generation the collector walks.
        assert answer == {"startup_node_frozen": True}

        collected_before = gc.get_stats()[2]["collected"]
        seconds_before = gc_seconds()
        Node()  # a cycle made after start-up: garbage the collector must still find
        gc.collect()
        assert gc.get_stats()[2]["collected"] > collected_before
        assert gc_seconds() > seconds_before
    finally:
        server.should_exit = True
        await serving
        gc.unfreeze()
