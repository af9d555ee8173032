"""The service's `ActiveStore` follows the rebuild pointer: read at most once per `ttl`, however
many handlers ask at the same time."""

from __future__ import annotations

import asyncio

from services.reporting.adapters.store import ActiveStore, swap_active_prefix

POINTER_READ = ("find", "read_model_pointer")


async def test_simultaneous_calls_share_one_read_of_the_pointer(watched_db) -> None:
    db, commands = watched_db
    now = [0.0]
    store = ActiveStore(db, ttl=1.0, clock=lambda: now[0])
    commands.sent.clear()

    await asyncio.gather(*(store.current() for _ in range(16)))
    assert commands.sent == [POINTER_READ]

    now[0] = 0.5  # within the ttl: no read
    await store.current()
    assert commands.sent == [POINTER_READ]

    await swap_active_prefix(db, "rebuilt_")
    commands.sent.clear()
    now[0] = 1.5  # the ttl is over: one read again, which finds the swap
    stores = await asyncio.gather(*(store.current() for _ in range(16)))
    assert commands.sent == [POINTER_READ]
    assert {s.prefix for s in stores} == {"rebuilt_"}
