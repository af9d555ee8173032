"""Idle CPU of the whole local platform: every devstack process, over a minute, with no traffic.

    ./scripts/run                                   # the run profile's stack (or pass --start)
    .venv/bin/python bench/bench_idle.py            # seed 10,000 dossiers, settle, measure 60 s
    .venv/bin/python bench/bench_idle.py --seed 0 --settle 10 --seconds 30

1. Seeds N dossiers (default 10,000) directly into the services' collections, in the state they
   reach once everything about them is done: intake's dossiers, processing's open and finished
   cases (next checks in the future), notification's recipients, deliveries, inbox and portal
   sync records, reporting's facts and counters. Seeded documents carry `bench_seed: "idle"`;
   seeding twice adds nothing (`--unseed` removes them).
2. Waits `--settle` seconds, so that start-up work is over and the polls have backed off.
3. Reads the CPU time (user + system, `/proc/<pid>/stat`) of every process devstack started —
   the pid files under `.devstack/<profile>/` — and of all its descendants (PostgreSQL's
   backends; an exited child's time is in its parent's `cutime`), at the start and end of the
   window, and prints each process's and the total CPU % of one core, with the target: < 5 %.

Other work on the machine (test suites) shows in the machine's busy share, printed too; it
disturbs the figures, so run twice when they look noisy. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_processing import open_case_document
from pymongo.errors import BulkWriteError

from devstack.config import load_config
from devstack.services import PROCESSES
from devstack.services import process as devstack_process
from services.processing.adapters.store import WATCHED
from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.workflow import Rules
from services.reporting.adapters.store import read_active_prefix
from services.reporting.domain.contributions import (
    contributions,
    parse_key,
    to_triples,
)
from shared.runtime.mongo import bulk_write_in_chunks, create_mongo_client

TARGET_PERCENT = 5.0
SEED_MARK = {"bench_seed": "idle"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROJECT = Path(__file__).resolve().parent.parent
UNITS = [f"G{n:02d}" for n in range(10, 30)]
PROCEDURES = [f"1.00{n}" for n in range(4400, 4460)]


# ---------------------------------------------------------------------------- seeding


def dossier_code(n: int) -> str:
    """Codes of their own (a 1999 receipt day), so that they never meet real dossiers."""
    return f"000.00.21.{UNITS[n % len(UNITS)]}-{990101 + n // 10_000:06d}-{n % 10_000:04d}"


@dataclass(frozen=True)
class Seeded:
    code: str
    unit: str
    procedure: str
    level: int
    channel: int
    submitted_at: datetime
    finished: bool


def seeded(n: int, rng: random.Random, now: datetime) -> Seeded:
    return Seeded(
        code=dossier_code(n),
        unit=UNITS[n % len(UNITS)],
        procedure=rng.choice(PROCEDURES),
        level=rng.choice([3, 4]),
        channel=1 if rng.random() < 0.7 else 2,
        submitted_at=now - timedelta(days=rng.randrange(1, 360), minutes=rng.randrange(1440)),
        finished=rng.random() < 0.6,
    )


def intake_dossier(d: Seeded) -> dict[str, Any]:
    state = 10 if d.finished else 4
    return {
        "_id": d.code,
        "procedure_code": d.procedure,
        "procedure_name": "Thủ tục",
        "unit_code": d.unit,
        "unit_name": "Cục",
        "level": d.level,
        "channel": d.channel,
        "applicant": {"kind": "person", "name": "Nguyễn Văn A", "identifier": "001203004567"},
        "contact": {"email": "a@example.vn", "phone": "+84912345678"},
        "form": {"ten_nhan_hieu": "Sao Mai"},
        "documents": [],
        "fee_vnd": 150_000,
        "submitted_at": d.submitted_at,
        "tracking_secret_sha256": "0" * 64,
        "status": {"state": state, "updated_at": d.submitted_at + timedelta(days=3)},
        "history": [{"at": d.submitted_at, "state": 1, "action": "submit"}],
        "inbox": [],
        "outbox": [],
        "outbox_pending": False,
        **SEED_MARK,
    }


def processing_case(n: int, d: Seeded, rng: random.Random, rules: Rules) -> dict[str, Any]:
    """bench_processing's open case (due dates in the future: nothing for the scanner now), or
    the same case finished."""
    now = datetime.now(UTC)
    document = open_case_document(n, rng, now + timedelta(days=3), rules)
    document.update(
        _id=d.code,
        unit_code=d.unit,
        submitted_at=d.submitted_at,
        outbox=[],
        outbox_pending=False,
        **SEED_MARK,
    )
    if d.finished:
        document.update(state=10, active=False, next_check_at=None)
    elif document.get("due_at"):  # the overdue check, days ahead (no warnings seeded)
        document["next_check_at"] = document["due_at"]
    document[WATCHED] = document["next_check_at"] is not None
    return document


def notification_documents(d: Seeded) -> dict[str, list[dict[str, Any]]]:
    sent = d.submitted_at + timedelta(seconds=5)
    event_id = f"seed-{d.code}"
    common = {
        "source_event_id": event_id,
        "dossier_code": d.code,
        "unit_code": d.unit,
        "template": "submitted",
        "locale": "vi",
        "title": "Hồ sơ đã được tiếp nhận",
        "body": "Hồ sơ của ông/bà đã được tiếp nhận.",
        "hops": [{"channel": "email", "address": "a@example.vn"}],
        "attempts": 1,
        "next_attempt_at": d.submitted_at,
        "lease_until": None,
        "claim": None,
        "created_at": d.submitted_at,
        "updated_at": sent,
        "fallback_of": None,
        "fallback_pending": False,
        "outbox": [],
        "outbox_pending": False,
        **SEED_MARK,
    }
    return {
        "recipients": [{"_id": d.code, "email": "a@example.vn", **SEED_MARK}],
        "deliveries": [
            {**common, "_id": f"{event_id}/email", "channel": "email", "status": "sent"},
            {**common, "_id": f"{event_id}/inbox", "channel": "inbox", "status": "delivered"},
        ],
        "inbox": [
            {
                "_id": f"{event_id}/inbox",
                "dossier_code": d.code,
                "title": common["title"],
                "body": common["body"],
                "created_at": sent,
                **SEED_MARK,
            }
        ],
        "portal_dossiers": [
            {
                "_id": d.code,
                "seq": 1,
                "submission": {"unit_code": d.unit, "procedure_code": d.procedure},
                "steps": [],
                "applied_event_ids": [event_id],
                "status": "synced",
                "next_attempt_at": sent,
                "attempts": 0,
                "synced_seq": 1,
                "steps_sent": [],
                "lease_until": None,
                "claim": None,
                "created_at": sent,
                "updated_at": sent,
                "synced_at": sent,
                **SEED_MARK,
            }
        ],
    }


def reporting_facts(d: Seeded) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "_id": d.code,
        "v": 1,
        "applied_event_ids": [f"seed-{d.code}"],
        "submitted": {
            "unit": d.unit,
            "procedure": d.procedure,
            "level": d.level,
            "channel": d.channel,
            "at": d.submitted_at,
            "fee_vnd": 150_000,
            "documents": 2,
        },
        "steps": [],
        **SEED_MARK,
    }
    if d.finished:
        facts["steps"] = [
            {
                "action": "result",
                "state": 9,
                "previous_state": 4,
                "at": d.submitted_at + timedelta(days=3),
                "due_at": d.submitted_at + timedelta(days=10),
                "electronic_result": True,
            }
        ]
    facts["counted"] = to_triples(contributions(facts))
    return facts


async def insert_new(collection: Any, documents: list[dict[str, Any]]) -> None:
    """Insert in batches; documents already there (a second seeding) are left alone."""
    for start in range(0, len(documents), 1000):
        try:
            await collection.insert_many(documents[start : start + 1000], ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise


async def seed(mongo_url: str, count: int) -> None:
    mongo = create_mongo_client(mongo_url)
    try:
        intake = mongo["dvc_intake"]
        present = await intake["dossiers"].count_documents(SEED_MARK)
        if present >= count:
            print(f"seed: {present:,} seeded dossiers present already")
            return
        started = time.perf_counter()
        rng = random.Random(4094)
        now = datetime.now(UTC)
        rules = Rules(WorkingCalendar(), warning_fractions=())
        dossiers = [seeded(n, rng, now) for n in range(count)]
        await insert_new(intake["dossiers"], [intake_dossier(d) for d in dossiers])
        cases = [processing_case(n, d, rng, rules) for n, d in enumerate(dossiers)]
        await insert_new(mongo["dvc_processing"]["cases"], cases)
        notification: dict[str, list[dict[str, Any]]] = {}
        for d in dossiers:
            for name, documents in notification_documents(d).items():
                notification.setdefault(name, []).extend(documents)
        for name, documents in notification.items():
            await insert_new(mongo["dvc_notification"][name], documents)
        reporting = mongo["dvc_reporting"]
        prefix = await read_active_prefix(reporting)
        facts = [reporting_facts(d) for d in dossiers]
        if await reporting[f"{prefix}dossiers"].count_documents(SEED_MARK) < count:
            await insert_new(reporting[f"{prefix}dossiers"], facts)
            await add_counters(reporting[f"{prefix}counters"], facts)
        print(
            f"seed: {count:,} dossiers into intake, processing, notification and reporting "
            f"in {time.perf_counter() - started:.0f} s"
        )
    finally:
        await mongo.close()


async def add_counters(collection: Any, facts: Iterable[dict[str, Any]]) -> None:
    from pymongo import UpdateOne

    totals: dict[str, dict[str, int]] = {}
    for document in facts:
        for key, fields in contributions(document).items():
            row = totals.setdefault(key, {})
            for name, n in fields.items():
                row[name] = row.get(name, 0) + n
    await bulk_write_in_chunks(
        collection,
        [
            UpdateOne({"_id": key}, {"$inc": row, "$setOnInsert": parse_key(key)}, upsert=True)
            for key, row in totals.items()
        ],
    )


async def unseed(mongo_url: str) -> None:
    mongo = create_mongo_client(mongo_url)
    try:
        for database in ("dvc_intake", "dvc_processing", "dvc_notification", "dvc_reporting"):
            db = mongo[database]
            for name in await db.list_collection_names():
                removed = await db[name].delete_many(SEED_MARK)
                if removed.deleted_count:
                    print(f"unseed: {removed.deleted_count:,} from {database}.{name}")
        print("unseed: reporting's counters keep the seeded counts (rebuild to recompute)")
    finally:
        await mongo.close()


# ---------------------------------------------------------------------------- measuring


def read_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, CPU ticks of the process and of its waited-for children)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return int(fields[1]), utime + stime + cutime + cstime


def tree_ticks(roots: dict[str, int]) -> dict[str, int]:
    """CPU ticks of each named root process and its live descendants (reaped ones are in their
    parents' children times)."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := read_stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    totals: dict[str, int] = {}
    for name, root in roots.items():
        total, stack = 0, [root]
        while stack:
            pid = stack.pop()
            if pid in stats:
                total += stats[pid][1]
                stack.extend(children.get(pid, ()))
        totals[name] = total
    return totals


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def devstack_processes(profile: str) -> dict[str, int]:
    """Every running process devstack started for the profile, by name (pid files)."""
    data_dir = load_config(profile).data_dir
    found: dict[str, int] = {}
    for pid_file in sorted(data_dir.rglob("*.pid")):
        if pid_file.name == "postmaster.pid":  # PostgreSQL's own: the same server
            continue
        try:
            pid = int(pid_file.read_text().split()[0])
        except (ValueError, IndexError, OSError):
            continue
        if read_stat(pid) is not None and pid not in found.values():
            found[pid_file.stem] = pid
    return found


def measure(profile: str, seconds: float, windows: int) -> None:
    roots = devstack_processes(profile)
    if not roots:
        raise SystemExit(f"no {profile} process is running: ./scripts/run first, or pass --start")
    step = seconds / windows
    began = time.monotonic()
    first = tree_ticks(roots)
    machine_first = machine_ticks()
    previous = first
    window_totals: list[float] = []
    for n in range(1, windows + 1):
        time.sleep(max(0.0, began + n * step - time.monotonic()))
        current = tree_ticks(roots)
        used = sum(current[k] - previous[k] for k in roots)
        window_totals.append(100 * used / CLOCK_TICKS / step)
        previous = current
    elapsed = time.monotonic() - began
    machine_last = machine_ticks()
    cores = os.cpu_count() or 1
    busy = (machine_last[0] - machine_first[0]) / max(1, machine_last[1] - machine_first[1])

    print(f"\nCPU over {elapsed:.0f} s, % of one core ({profile} profile, {len(roots)} processes):")
    total = 0.0
    for name in sorted(roots, key=lambda k: previous[k] - first[k], reverse=True):
        percent = 100 * (previous[name] - first[name]) / CLOCK_TICKS / elapsed
        total += percent
        print(f"  {name:<20} pid {roots[name]:>7}  {percent:6.2f} %")
    print(f"  {'total':<20} {'':>11}  {total:6.2f} %   (target < {TARGET_PERCENT:.0f} %)")
    print(f"  per {step:.0f} s window: " + ", ".join(f"{v:.1f}" for v in window_totals) + " %")
    print(
        f"machine busy meanwhile: {busy * 100 * cores:.0f} % of one core, all {cores} cores "
        "(the rest is other work on the machine: when large, figures are disturbed)"
    )
    verdict = "met" if total < TARGET_PERCENT else "NOT met"
    print(f"idle target < {TARGET_PERCENT:.0f} % of one core: {verdict} ({total:.2f} %)")


def devstack(profile: str, command: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "devstack", "--profile", profile, command], cwd=PROJECT, check=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="run", choices=["run"], help="the stack measured")
    parser.add_argument("--seed", type=int, default=10_000, help="dossiers to seed (0: none)")
    parser.add_argument("--unseed", action="store_true", help="remove seeded documents and exit")
    parser.add_argument("--settle", type=float, default=90.0, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window")
    parser.add_argument("--windows", type=int, default=6, help="sub-windows printed")
    parser.add_argument("--start", action="store_true", help="start the stack if it is down")
    parser.add_argument("--stop", action="store_true", help="stop the stack afterwards")
    args = parser.parse_args()
    config = load_config(args.profile)
    if args.unseed:
        asyncio.run(unseed(config.mongo_url))
        return
    running = [name for name in PROCESSES if devstack_process(config, name).pid() is not None]
    if len(running) < len(PROCESSES):
        if not args.start:
            raise SystemExit(
                f"the {args.profile} stack is not (fully) running: ./scripts/run, or pass --start"
            )
        devstack(args.profile, "run")
    try:
        if args.seed:
            asyncio.run(seed(config.mongo_url, args.seed))
        print(f"settling {args.settle:.0f} s ...", flush=True)
        time.sleep(args.settle)
        measure(args.profile, args.seconds, args.windows)
    finally:
        if args.stop:
            devstack(args.profile, "down")


if __name__ == "__main__":
    main()
