"""A pool of workers over keys (delivery ids, dossier codes) that a poller also feeds.

The durable state lives in the database; this pool only schedules it: `submit` queues a key for
a worker now, the poller finds what is due (retries, orphaned claims, what a full queue
dropped). One key is never worked on by two workers of this process at once: while queued or in
flight, submitting it again does nothing (across replicas, the database claim decides).

The poller is paced (`shared.runtime.background.Pacer`): every `poll_interval` while it finds work,
then less and less often up to `max_poll_interval`; work scheduled for later (a retry) is announced
with `due_at`/`due_in`, so that the poller looks then rather than polling until then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from shared.runtime.background import Pacer, cancel_and_wait, run_paced

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
        max_poll_interval: float | None = None,
        max_queued: int = 10_000,
    ) -> None:
        """`poll()` returns whether (or how much) it found, which paces the next poll."""
        self.name = name
        self._process = process
        self._poll = poll
        self.workers = workers
        self.pacer = Pacer(poll_interval, max_poll_interval)
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max_queued)
        self._active: set[str] = set()  # queued or in flight here
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    def submit(self, key: str) -> bool:
        """Queue a key for the workers (the poller finds it anyway if the queue is full); False
        when it was not queued now: already queued or in flight, full, or stopping."""
        if key in self._active or self._stopping:
            return False
        try:
            self._queue.put_nowait(key)
        except asyncio.QueueFull:
            self.pacer.due_in(self.pacer.interval)  # the poller finds it again soon
            return False
        self._active.add(key)
        return True

    @property
    def free(self) -> int:
        """Workers neither busy nor spoken for by a queued key: work submitted now starts at once
        (as long as nothing else is submitted first)."""
        return self.workers - self._busy - self._queue.qsize()

    def due_at(self, when: datetime) -> None:
        """Some work falls due at `when` (e.g. a retry): the poller looks for it then."""
        self.pacer.due_at(when)

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
                self.pacer.due_in(self.pacer.interval)
            finally:
                self._active.discard(key)
                self._busy -= 1
                if not self._busy:
                    self._idle.set()

    def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"{self.name}-worker-{n}")
            for n in range(self.workers)
        ]
        poller = run_paced(f"{self.name}: poll", self.pacer, self._poll)
        self._tasks.append(asyncio.create_task(poller, name=f"{self.name}-poller"))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, let in-flight work finish (up to `grace` seconds), then stop.
        Abandoned work keeps its database claim and is taken over when its lease expires."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            log.warning("%s: %d still in flight at shutdown", self.name, self._busy)
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        self._active.clear()
        while not self._queue.empty():
            self._queue.get_nowait()
