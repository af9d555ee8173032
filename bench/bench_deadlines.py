"""Deadline computation throughput, in-process (target: ≥ 50,000 due dates/s on 2 cores).

Run: .venv/bin/python bench/bench_deadlines.py
Prints figures only; a realistic mix of procedures (mostly working days, some calendar days,
months and working hours), receipt times spread over 2019–2026, both channels and the 15:00
cut-off, and a supplement pause on one dossier in five.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.deadlines import (
    DeadlinePolicy,
    Pause,
    clock_start,
    due_at,
)
from shared.contracts.catalogue import ProcessingTime, TimeUnit

VN = ZoneInfo("Asia/Ho_Chi_Minh")
MIX = [  # (weight, processing time)
    (40, ProcessingTime(value=5, unit=TimeUnit.WORKING_DAYS)),
    (20, ProcessingTime(value=10, unit=TimeUnit.WORKING_DAYS)),
    (15, ProcessingTime(value=15, unit=TimeUnit.WORKING_DAYS)),
    (5, ProcessingTime(value=30, unit=TimeUnit.WORKING_DAYS)),
    (8, ProcessingTime(value=30, unit=TimeUnit.CALENDAR_DAYS)),
    (5, ProcessingTime(value=45, unit=TimeUnit.CALENDAR_DAYS)),
    (4, ProcessingTime(value=12, unit=TimeUnit.MONTHS)),
    (3, ProcessingTime(value=8, unit=TimeUnit.WORKING_HOURS)),
]
N = 200_000
Case = tuple[datetime, ProcessingTime, bool, bool, list[Pause]]  # received, time, online, cut-off


def make_cases(
    rng: random.Random,
) -> list[tuple[datetime, ProcessingTime, bool, bool, list[Pause]]]:
    weights = [w for w, _ in MIX]
    times = [t for _, t in MIX]
    start = datetime(2019, 1, 1, tzinfo=VN)
    cases = []
    for _ in range(N):
        received = start + timedelta(minutes=rng.randrange(8 * 365 * 24 * 60))
        pauses: list[Pause] = []
        if rng.random() < 0.2:
            begun = received + timedelta(days=rng.randrange(1, 10))
            pauses.append(Pause(begun, begun + timedelta(days=rng.randrange(1, 15)), "Bổ sung"))
        online = rng.random() < 0.6
        cases.append((received, rng.choices(times, weights)[0], online, rng.random() < 0.5, pauses))
    return cases


def run(label: str, policy: DeadlinePolicy, cases: list[Case], with_clock_start: bool) -> None:
    calendar = WorkingCalendar()
    calendar.add_working_days(datetime(2019, 1, 1).date(), 2500)  # warm the caches (not timed)
    began = time.perf_counter()
    for received, processing_time, online, cutoff, pauses in cases:
        t0 = received
        if with_clock_start:
            t0 = clock_start(
                received, online=online, cutoff_15h=cutoff, calendar=calendar, policy=policy
            )
        due_at(t0, processing_time, calendar=calendar, policy=policy, pauses=pauses)
    elapsed = time.perf_counter() - began
    rate = len(cases) / elapsed
    print(f"{label:<40} {rate:>10,.0f} due dates/s  ({len(cases):,} in {elapsed:.2f} s)")


def main() -> None:
    cases = make_cases(random.Random(4094))
    print(f"Python {sys.version.split()[0]}, {N:,} dossiers, one process")
    run("due_at, restart policy", DeadlinePolicy(), cases, with_clock_start=False)
    run("clock_start + due_at, restart policy", DeadlinePolicy(), cases, with_clock_start=True)
    run(
        "clock_start + due_at, resume policy",
        DeadlinePolicy(supplement_clock="resume"),
        cases,
        with_clock_start=True,
    )
    print("target: >= 50,000 due dates/s")


if __name__ == "__main__":
    main()
