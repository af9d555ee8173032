"""Periodic background jobs of a service (publishers, scanners, pollers), the `Pacer` that
decides when each runs next, so that an idle service costs next to nothing, and `OnRead` for
jobs that only their readers need (gauges recomputed at scrape time).

A poll for work runs `interval` seconds after a pass that found some; each pass that finds none
doubles the wait, up to `max_interval`. The code path that creates work wakes the loop at once
(`wake()`, e.g. after writing a document with pending events), and work known to fall due later
(a retry at `next_attempt_at`, a deadline check at `next_check_at`) is announced with `due_at()`
or `due_in()`: the loop then sleeps until the earliest such time, never longer than its backoff.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

EventWait = Callable[[asyncio.Event, float], Awaitable[bool]]
# Due times a pacer remembers, the earliest kept: a later one is found by the backoff poll, at most
# `max_interval` late.
MAX_DUE_TIMES = 1024


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set (True) or `seconds` have passed (False)."""
    if event.is_set():
        return True
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class Pacer:
    """When a polling loop looks next: soon after it found work, later and later while it finds
    none, at once when woken, and no later than the earliest due time it was told of.

    `min_gap` keeps even woken passes at least that many seconds apart (from the end of one to
    the start of the next), so that a burst of wake-ups makes one pass (e.g. a batched write).
    `clock` (monotonic seconds), `wait` (for the wake-up event, with a timeout) and `sleep` are
    injectable for tests."""

    def __init__(
        self,
        interval: float,
        max_interval: float | None = None,
        *,
        factor: float = 2.0,
        min_gap: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        wait: EventWait = wait_for_event,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.max_interval = max(interval, max_interval or interval)
        self.factor = factor
        self.min_gap = min_gap
        self.delay = interval  # the wait after the last pass, before due times are considered
        self._clock = clock
        self._wait = wait
        self._sleep = sleep
        self._event = asyncio.Event()
        self._due: list[float] = []  # a heap of monotonic instants at which work falls due
        self._last_pass = -float("inf")  # when the last pass ended

    # ------------------------------------------------------------------ told by the service

    def wake(self) -> None:
        """Work was just created: the loop runs at once, then looks again soon."""
        self._event.set()

    def due_in(self, seconds: float) -> None:
        """Work falls due in `seconds`: the loop runs then (unless it runs earlier anyway)."""
        heapq.heappush(self._due, self._clock() + max(0.0, seconds))
        if len(self._due) > MAX_DUE_TIMES:
            self._due = heapq.nsmallest(MAX_DUE_TIMES // 2, self._due)  # sorted: still a heap
        if seconds <= 0:
            self._event.set()  # due now: a wait in progress ends at once

    def due_at(self, when: datetime | None) -> None:
        """Work falls due at the wall-clock instant `when` (None: nothing is due)."""
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            self.due_in((when - datetime.now(UTC)).total_seconds())

    # ------------------------------------------------------------------ used by the loop

    def record(self, found: object) -> None:
        """After a pass: truthy `found` (work done) means look again after `interval`; falsy
        means back off (the wait grows by `factor`, up to `max_interval`)."""
        self._last_pass = self._clock()
        if found:
            self.delay = self.interval
        else:
            self.delay = min(self.max_interval, self.delay * self.factor)

    def next_wait(self) -> float:
        """Seconds until the next pass unless woken: the backoff, or the earliest due time."""
        if not self._due:
            return self.delay
        return min(self.delay, max(0.0, self._due[0] - self._clock()))

    async def wait(self) -> bool:
        """Sleep until woken, until the earliest due time, or until the backoff has elapsed.
        True when woken, or when work fell due at once (the wait is back to `interval`)."""
        woken = await self._wait(self._event, self.next_wait())
        self._event.clear()
        if woken:
            self.delay = self.interval
        gap = self._last_pass + self.min_gap - self._clock()
        if gap > 0:
            await self._sleep(gap)
        now = self._clock()
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)
        return woken


Job = Callable[[], Awaitable[Any]]
# How long a cancelled task may take to end before it is cancelled again (see `cancel_and_wait`).
CANCEL_AGAIN_AFTER = 2.0


async def cancel_and_wait(
    *tasks: asyncio.Task[Any], again_after: float = CANCEL_AGAIN_AFTER
) -> None:
    """Cancel `tasks` and wait until every one has ended; their exceptions are dropped.

    The cancellation is sent again every `again_after` seconds while a task runs on: on Python
    3.11 a cancellation that arrives just as an awaited operation completes is swallowed by
    `asyncio.wait_for` (which pymongo and aiokafka use inside), and a loop that lost its one
    cancellation would run forever, hanging the shutdown that waits for it."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_after)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at collection


async def run_paced(name: str, pacer: Pacer, job: Job) -> None:
    """Run `job`, then again whenever `pacer` says, forever (until cancelled). The job's result
    tells the pacer whether it found work; a failing run is logged and counts as none."""
    while True:
        try:
            pacer.record(await job())
        except asyncio.CancelledError:
            raise
        except Exception:
            pacer.record(None)
            log.exception("%s failed; retrying in %.1f s", name, pacer.next_wait())
        await pacer.wait()


@asynccontextmanager
async def periodically(name: str, interval: float | Pacer, job: Job) -> AsyncIterator[Pacer]:
    """Run `job` now and then every `interval` seconds while inside the block — or as a `Pacer`
    says (backoff while idle, wake-ups, due times). A failing run is logged and retried at the
    next pass; leaving the block cancels the job. Yields the pacer."""
    pacer = interval if isinstance(interval, Pacer) else Pacer(interval)
    task = asyncio.create_task(run_paced(name, pacer, job), name=name)
    try:
        yield pacer
    finally:
        await cancel_and_wait(task)


class OnRead:
    """A job worth running only for whoever reads its result — gauges recomputed from the
    database, read by Prometheus' scrapes. `fresh()` (called by the reader) runs it when its last
    run is older than `max_age` seconds, one run at a time, and waits for that run at most `wait`
    seconds (a slow run finishes in the background for the next reader); after a failed run, at
    most `wait_after_failure` seconds (while the database is away each run takes its full time-out
    to fail, and a scrape held `wait` seconds every time would time out on a short scrape
    time-out, losing every gauge of the service, the consumer lag too). While nobody reads,
    nothing runs."""

    def __init__(
        self,
        name: str,
        job: Job,
        max_age: float,
        *,
        wait: float = 5.0,
        wait_after_failure: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.job = job
        self.max_age = max_age
        self.wait = wait
        self.wait_after_failure = wait_after_failure
        self._clock = clock
        self._ran_at = -float("inf")  # when the last run ended
        self._running: asyncio.Task[None] | None = None
        self._failed = False  # whether the last run that ended failed

    async def fresh(self) -> None:
        if self._clock() - self._ran_at < self.max_age:
            return
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run(), name=self.name)
        wait = min(self.wait, self.wait_after_failure) if self._failed else self.wait
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._running), wait)

    async def _run(self) -> None:
        try:
            await self.job()
            self._failed = False
        except Exception:
            self._failed = True
            log.exception("%s failed; tried again at a read after %.0f s", self.name, self.max_age)
        finally:
            self._ran_at = self._clock()

    async def close(self) -> None:
        """Cancel a run in progress (at shutdown)."""
        if self._running is not None:
            await cancel_and_wait(self._running)
