"""A pool of workers over keys (delivery ids, dossier codes) that a poller also feeds.

The durable state lives in the database; this pool only schedules it: `submit` queues a key for
a worker now, the poller finds what is due (retries, orphaned claims, what a full queue
dropped). One key is never worked on by two workers of this process at once: while queued or in
flight, submitting it again does nothing (across replicas, the database claim decides).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class WorkPool:
    def __init__(
        self,
        name: str,
        *,
        process: Callable[[str], Awaitable[Any]],
        poll: Callable[[], Awaitable[Any]],
        workers: int,
        poll_interval: float,
        max_queued: int = 10_000,
    ) -> None:
        self.name = name
        self._process = process
        self._poll = poll
        self.workers = workers
        self.poll_interval = poll_interval
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max_queued)
        self._active: set[str] = set()  # queued or in flight here
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    def submit(self, key: str) -> None:
        """Queue a key for the workers (the poller finds it anyway if the queue is full)."""
        if key in self._active or self._stopping:
            return
        try:
            self._queue.put_nowait(key)
        except asyncio.QueueFull:
            return
        self._active.add(key)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            if self._stopping:
                self._active.discard(key)
                continue  # persisted: the next start picks it up
            self._busy += 1
            self._idle.clear()
            try:
                await self._process(key)
            except Exception:
                log.exception("%s: %s failed unexpectedly; the poller retries it", self.name, key)
            finally:
                self._active.discard(key)
                self._busy -= 1
                if not self._busy:
                    self._idle.set()

    async def _poller(self) -> None:
        while True:
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: poll failed; retrying", self.name)
            await asyncio.sleep(self.poll_interval)

    def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"{self.name}-worker-{n}")
            for n in range(self.workers)
        ]
        self._tasks.append(asyncio.create_task(self._poller(), name=f"{self.name}-poller"))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, let in-flight work finish (up to `grace` seconds), then stop.
        Abandoned work keeps its database claim and is taken over when its lease expires."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("%s: %d still in flight at shutdown", self.name, self._busy)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._active.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
