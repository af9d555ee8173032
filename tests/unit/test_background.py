"""The pacer of background loops (backoff while idle, wake-ups, due times) and jobs run on read:
a fake clock, no real sleeping."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.runtime.background import (
    MAX_DUE_TIMES,
    OnRead,
    Pacer,
    cancel_and_wait,
    periodically,
    wait_for_event,
)
from shared.runtime.work_pool import WorkPool


class FakeTime:
    """A clock that moves only when the pacer waits or sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self.sleeps: list[float] = []
        self.wake_during_wait = False

    def clock(self) -> float:
        return self.now

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        await asyncio.sleep(0)  # let other tasks run, as a real wait would
        if event.is_set() or self.wake_during_wait:
            return True
        self.now += seconds
        return False

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def pacer(self, interval: float, max_interval: float | None = None, **options: float) -> Pacer:
        return Pacer(
            interval,
            max_interval,
            clock=self.clock,
            wait=self.wait,
            sleep=self.sleep,
            **options,
        )


async def test_empty_passes_back_off_exponentially_up_to_the_cap() -> None:
    time = FakeTime()
    pacer = time.pacer(1.0, 30.0)
    for _ in range(7):
        pacer.record(0)
        await pacer.wait()
    assert time.waits == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


async def test_a_pass_that_found_work_resets_to_the_short_interval() -> None:
    time = FakeTime()
    pacer = time.pacer(1.0, 30.0)
    for found in (0, 0, 0, 5, 0):
        pacer.record(found)
        await pacer.wait()
    assert time.waits == [2.0, 4.0, 8.0, 1.0, 2.0]


async def test_without_a_cap_the_interval_is_fixed() -> None:
    time = FakeTime()
    pacer = time.pacer(30.0)
    for found in (None, None, True):
        pacer.record(found)
        await pacer.wait()
    assert time.waits == [30.0, 30.0, 30.0]


async def test_a_wake_up_ends_the_wait_and_resets_the_backoff() -> None:
    time = FakeTime()
    pacer = time.pacer(1.0, 60.0)
    for _ in range(6):
        pacer.record(False)
    assert pacer.next_wait() == 60.0
    pacer.wake()
    assert await pacer.wait() is True
    assert time.now == 1000.0  # no time passed
    assert pacer.next_wait() == 1.0
    assert await pacer.wait() is False  # the event was cleared


async def test_the_loop_sleeps_until_the_earliest_due_time_within_its_backoff() -> None:
    time = FakeTime()
    pacer = time.pacer(1.0, 60.0)
    for _ in range(6):
        pacer.record(False)
    pacer.due_in(25.0)
    pacer.due_in(10.0)
    pacer.due_in(500.0)  # later than the backoff: the backoff wins
    assert pacer.next_wait() == 10.0
    assert await pacer.wait() is False
    assert time.now == 1010.0
    pacer.record(False)
    assert pacer.next_wait() == 15.0  # the next due time, then the backoff
    await pacer.wait()
    pacer.record(False)
    assert pacer.next_wait() == 60.0


async def test_work_due_now_ends_a_wait_in_progress() -> None:
    pacer = Pacer(1.0, 60.0)
    for _ in range(6):
        pacer.record(False)
    waiting = asyncio.create_task(pacer.wait())
    await asyncio.sleep(0)
    pacer.due_in(0)
    assert await asyncio.wait_for(waiting, 1.0) is True


async def test_due_at_takes_wall_clock_instants() -> None:
    pacer = Pacer(1.0, 60.0)
    for _ in range(6):
        pacer.record(False)
    pacer.due_at(None)
    assert pacer.next_wait() == 60.0
    pacer.due_at(datetime.now(UTC) + timedelta(seconds=20))
    assert 19.0 < pacer.next_wait() <= 20.0
    pacer.due_at(datetime.now().replace(tzinfo=None) - timedelta(hours=1))  # naive: UTC
    assert pacer.next_wait() == 0.0


async def test_only_the_earliest_due_times_are_kept() -> None:
    time = FakeTime()
    pacer = time.pacer(1.0, 60.0)
    for n in range(MAX_DUE_TIMES + 1):
        pacer.due_in(2000.0 - n)  # each earlier than the last
    assert len(pacer._due) <= MAX_DUE_TIMES
    earliest = time.now + 2000.0 - MAX_DUE_TIMES
    assert min(pacer._due) == pacer._due[0] == earliest
    assert max(pacer._due) < earliest + MAX_DUE_TIMES  # the latest were dropped


async def test_min_gap_keeps_woken_passes_apart() -> None:
    time = FakeTime()
    pacer = time.pacer(0.1, 60.0, min_gap=0.1)
    pacer.record(True)  # a pass just ended
    pacer.wake()
    await pacer.wait()
    assert time.sleeps == [pytest.approx(0.1)]
    time.now += 5.0
    pacer.record(False)
    time.now += 1.0  # long after the pass: no gap to keep
    pacer.wake()
    await pacer.wait()
    assert len(time.sleeps) == 1


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(0)


async def test_wait_for_event() -> None:
    event = asyncio.Event()
    assert await wait_for_event(event, 0.001) is False
    event.set()
    assert await wait_for_event(event, 10.0) is True


async def test_periodically_paces_a_job_and_is_woken_by_new_work() -> None:
    time = FakeTime()
    runs: list[float] = []
    woken = asyncio.Event()

    async def job() -> int:
        runs.append(time.now)
        if len(runs) == 4:
            woken.set()
        return 0

    pacer = time.pacer(1.0, 4.0)
    async with periodically("test job", pacer, job) as yielded:
        assert yielded is pacer
        await asyncio.wait_for(woken.wait(), 1.0)
        time.wake_during_wait = True  # from now on each wait ends at once, as woken
        await asyncio.sleep(0)
    assert runs[:4] == [1000.0, 1002.0, 1006.0, 1010.0]  # 2, 4, then the cap of 4


async def test_a_failing_job_is_logged_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    calls = 0
    done = asyncio.Event()

    async def job() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            done.set()
        raise RuntimeError("database down")

    async with periodically("failing job", time.pacer(1.0, 8.0), job):
        await asyncio.wait_for(done.wait(), 1.0)
    assert time.waits[:2] == [2.0, 4.0]
    assert "failing job failed" in caplog.text


async def test_a_job_run_on_read_runs_only_when_its_result_is_stale() -> None:
    time = FakeTime()
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1

    source = OnRead("gauges", job, 30.0, clock=time.clock)
    await source.fresh()
    await source.fresh()
    time.now += 29.0
    await source.fresh()
    assert runs == 1
    time.now += 1.0
    await asyncio.gather(source.fresh(), source.fresh())  # concurrent readers: one run
    assert runs == 2
    await source.close()


async def test_a_slow_job_run_on_read_keeps_readers_waiting_a_bounded_time() -> None:
    release = asyncio.Event()
    finished = asyncio.Event()

    async def job() -> None:
        await release.wait()
        finished.set()

    source = OnRead("slow gauges", job, 30.0, wait=0.01)
    await source.fresh()  # returns after `wait`: the run goes on in the background
    assert not finished.is_set()
    release.set()
    await asyncio.wait_for(finished.wait(), 1.0)
    await source.close()


async def test_a_failing_job_run_on_read_is_logged_and_tried_at_a_later_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = FakeTime()
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("database down")

    source = OnRead("gauges", job, 30.0, clock=time.clock)
    await source.fresh()
    await source.fresh()
    assert calls == 1 and "gauges failed" in caplog.text
    time.now += 30.0
    await source.fresh()
    assert calls == 2


async def test_after_a_failed_run_readers_wait_for_the_next_one_only_briefly() -> None:
    # While the database is away, every run takes its full time-out to fail: a scrape held that
    # long each time would time out and lose every gauge of the service.
    time = FakeTime()
    fail = True
    release = asyncio.Event()

    async def job() -> None:
        if fail:
            raise RuntimeError("database down")
        await release.wait()

    source = OnRead("gauges", job, 30.0, wait=60.0, wait_after_failure=0.01, clock=time.clock)
    await source.fresh()  # fails at once
    fail = False
    time.now += 30.0
    await asyncio.wait_for(source.fresh(), 1.0)  # the next run hangs: the reader does not
    release.set()
    await source.close()


async def test_a_work_pool_polls_when_its_work_falls_due_or_soon_after_an_overflow() -> None:
    polls: list[float] = []
    time = FakeTime()

    async def poll() -> int:
        polls.append(time.now)
        return 0

    async def process(key: str) -> None:
        await asyncio.sleep(3600)

    pool = WorkPool("test", process=process, poll=poll, workers=1, poll_interval=1.0, max_queued=1)
    pool.pacer = time.pacer(1.0, 60.0)
    for _ in range(8):
        pool.pacer.record(0)
    assert pool.pacer.next_wait() == 60.0
    pool.due_at(datetime.now(UTC) + timedelta(seconds=10))  # a retry in 10 s
    assert 9.0 < pool.pacer.next_wait() <= 10.0
    pool.submit("a")
    pool.submit("b")  # the queue is full: the poller finds it again soon
    assert pool.pacer.next_wait() == 1.0


async def _loop_that_swallows_its_first_cancellation(passes: list[int]) -> None:
    """What Python 3.11's `asyncio.wait_for` does to a cancellation that arrives as the awaited
    operation completes (inside pymongo and aiokafka): it is lost, and the loop goes on."""
    swallowed = False
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True
        passes.append(1)


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again_until_it_ends() -> None:
    passes: list[int] = []
    task = asyncio.create_task(_loop_that_swallows_its_first_cancellation(passes))
    await asyncio.sleep(0.05)
    async with asyncio.timeout(5):
        await cancel_and_wait(task, again_after=0.05)
    assert task.cancelled()
    assert passes  # it ran on after the first cancellation, and still ended


async def test_cancel_and_wait_drops_the_exceptions_of_tasks_that_failed() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(failed, asyncio.create_task(asyncio.sleep(10)))
    assert isinstance(failed.exception(), RuntimeError)
