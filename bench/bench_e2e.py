"""End to end through the four services: dossiers/s, submit -> notified latency, and the database
commands each service makes per dossier, at 1,000 and at 100,000 stored dossiers.

    .venv/bin/python -m devstack --profile test up      # Kafka and FerretDB (the test profile's)
    .venv/bin/python bench/bench_e2e.py [--dossiers 1000] [--stored 1000,100000] [--rate 50]
        [--clients 16] [--profile test|run] [--quick]

The bench starts the four services and the three simulators (portal, mail, SMS) itself, as
separate processes with devstack's helpers (`devstack.services.start`), on free ports, against
the chosen profile's Kafka and FerretDB, with their own databases (`e2e_bench_<token>_<service>`)
and topics (suffix `.e2eb<token>`), all deleted at the end: nothing of the profile's own data or
of others' tests is touched. The applicants choose e-mail first (the mail simulator accepts
at once); `--channels sms,email` sends the receipt by SMS, whose simulator confirms delivery only
after its 1 s receipt delay.

1. Warm-up: a few dossiers go through; their documents in each service's database (dossier,
   case, recipient, deliveries, portal sync, reporting facts...) are the templates of the seed.
2. Raw ceilings of this box against the same server and broker: PyMongo `insert_one` (one
   client in a loop, and 16 concurrent), `insert_many`, `update_one` and `find_one` by `_id`, of
   the intake dossier document; aiokafka produce (acks=all) and consume of the submitted event.
3. For each stored size: every per-dossier collection is seeded with copies of the templates
   (`insert_many` in batches, collections in parallel) up to that many dossiers (on PostgreSQL
   then vacuumed and analyzed, `analyze_seeded`), then N online
   dossiers are submitted over HTTP (multipart, two files, an `Idempotency-Key`) at the fixed
   offered rate, then N more as fast as `--clients` concurrent clients go. A dossier is through
   when processing opened its case (`dvc_processing_cases_opened_total`), its receipt was
   notified (read from `dvc.dossier.notified.v1` by this bench, without a consumer group: the
   latency is the record's timestamp minus the start of the HTTP request) and reporting counted
   it (its quarterly counters, read directly). Each service's `/metrics` is scraped before and
   after (`dvc_mongo_commands_total`, see `shared.runtime.mongo.CommandCounter`): database commands
   per dossier, by service, command and collection, less what the service does idle (measured
   over a few seconds before the batch). Also each service's CPU time and RSS (from /proc), the
   part of it its garbage collector took (`dvc_gc_cpu_seconds_total`), and the CPU time of the
   servers under them (FerretDB, PostgreSQL's postmaster and backends, Kafka):
   on this 2-core machine everything shares two cores, so CPU ms per dossier bounds the rate.

Prints figures; asserts nothing (exit status 1 only if dossiers never got through).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_agencies import _proc_cpu_seconds, delete_topics, percentile, produce, read_all
from bench_intake import rss_mb

from devstack import postgres_server, services
from devstack.config import StackConfig, load_config
from devstack.processes import port_in_use
from services.reporting.domain.quarters import quarter_of
from shared.contracts.cloudevents import KafkaRecord
from shared.contracts.topics import (
    DOSSIER_NOTIFIED_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    TopicSpec,
    platform_topics,
)
from shared.runtime.kafka import ensure_topics
from shared.runtime.mongo import COMMAND_COUNTS_ENV, create_mongo_client
from tests.intake_samples import dossier_json, multipart, trademark_files

SERVICES = services.SERVICES
# The collections that hold one (or a few) documents per dossier, and the field naming the
# dossier in them: what is seeded. Catalogue copies, counters, sequences and GridFS are not.
PER_DOSSIER = {
    # (Idempotency records are sealed and expire after a day: they name no dossier.)
    "intake": {"dossiers": "_id"},
    "processing": {"cases": "_id"},
    "notification": {
        "recipients": "_id",
        "deliveries": "dossier_code",
        "portal_dossiers": "_id",
        "inbox": "dossier_code",
    },
    "reporting": {"dossiers": "_id"},
}
WRITES = {"insert", "update", "delete", "findAndModify", "createIndexes"}
READS = {"find", "getMore", "aggregate", "count", "distinct", "listIndexes", "listCollections"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SEED_NAMESPACE = uuid.UUID("2d9f6c1e-5b7a-4c3e-9a8d-0e1f2a3b4c5d")
SEED_BATCH = 1000
OK_STATUSES = {"sent", "delivered"}
PARTITIONS = 3  # of the bench's topics

CommandCounts = dict[tuple[str, str], float]


# ---------------------------------------------------------------------------------- the stack


@dataclasses.dataclass
class Stack:
    """The bench's own services and simulators on the profile's Kafka and FerretDB."""

    infra: StackConfig
    config: StackConfig  # the same, with the bench's ports and data folder
    token: str
    with_counts: bool

    @property
    def suffix(self) -> str:
        return f".e2eb{self.token}"

    def database(self, service: str) -> str:
        return f"e2e_bench_{self.token}_{service}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{services.port(self.config, service)}"

    def pid(self, name: str) -> int | None:
        return services.process(self.config, name).pid()

    def start(self) -> None:
        # `services.start` passes its own environment on top of ours: the rest goes through it.
        for service in SERVICES:
            prefix = f"DVC_{service.upper()}_"
            os.environ[prefix + "TOPIC_SUFFIX"] = self.suffix
            os.environ[prefix + "MONGO_DATABASE"] = self.database(service)
        os.environ["DVC_INTAKE_SUBMISSIONS_PER_MINUTE"] = "1000000"
        os.environ[COMMAND_COUNTS_ENV] = "1" if self.with_counts else "0"
        for name in SERVICES:  # the simulators they call start first (`services.start`)
            services.start(self.config, name)
        for name in SERVICES:
            services.wait_ready(self.config, name, timeout=120)

    def stop(self) -> None:
        for name in services.PROCESSES:
            services.process(self.config, name).stop()


def free_base_port(count: int) -> int:
    for base in range(28001, 60000, 50):
        if not any(port_in_use(base + i) for i in range(count)):
            return base
    raise SystemExit("no free block of ports for the bench's services")


# ------------------------------------------------------------------------- machine speed

# A fixed pure-Python workload, timed in CPU time once a second in a process of its own. This
# machine's cores are not always equally fast (the same batch has taken a quarter more CPU per
# dossier in every process at some moments than at others); the workload's time shows some of
# those moments, not all (it is pure computation, the platform mostly system calls). About 2 %
# of one core.
SPEED_PROBE = """
import sys, time
while True:
    start = time.process_time()
    total = 0
    for i in range(100_000):
        total += i * i % 7
    print(round((time.process_time() - start) * 1000, 2), flush=True)
    time.sleep(1)
"""


class SpeedProbe:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", SPEED_PROBE], stdout=subprocess.PIPE, text=True
        )

    def stop(self) -> list[float]:
        """The workload's CPU ms, once per second since the start."""
        self._process.terminate()
        out, _ = self._process.communicate()
        return [float(line) for line in out.split()]


# ---------------------------------------------------------------------------------- metrics


async def scrape(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """Database commands by (command, collection), cases opened (processing), and the CPU
    seconds of the garbage collector's passes."""
    text = (await client.get(f"{url}/metrics")).text
    commands: CommandCounts = defaultdict(float)
    opened = gc_seconds = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "dvc_mongo_commands_total":
                commands[(sample.labels["command"], sample.labels["collection"])] += sample.value
            elif sample.name == "dvc_processing_cases_opened_total":
                opened += sample.value
            elif sample.name == "dvc_gc_cpu_seconds_total":
                gc_seconds += sample.value
    return {"commands": dict(commands), "opened": opened, "gc": gc_seconds}


async def scrape_all(stack: Stack, client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    scraped = await asyncio.gather(*(scrape(client, stack.url(s)) for s in SERVICES))
    return dict(zip(SERVICES, scraped, strict=True))


def delta(after: CommandCounts, before: CommandCounts) -> CommandCounts:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each service and of the servers under them: FerretDB, PostgreSQL
    (the postmaster and its backends, FerretDB's pooled connections) and Kafka."""
    readings = {s: _proc_cpu_seconds(pid) if (pid := stack.pid(s)) else None for s in SERVICES}
    data = stack.infra.data_dir
    for server, pid in (
        ("ferretdb", _pid_in(data / "ferretdb" / "ferretdb.pid")),
        ("postgresql", _pid_in(data / "postgres" / "cluster" / "postmaster.pid")),
        ("kafka", _pid_in(data / "kafka" / "kafka.pid")),
    ):
        if pid is not None:
            postgres = server == "postgresql"
            values = [
                v
                for p in [pid, *(_children(pid) if postgres else ())]
                if (v := _proc_cpu_seconds(p, reaped_children=postgres and p == pid)) is not None
            ]
            readings[server] = sum(values) if values else None
    simulators = [
        v
        for name in services.SIMULATORS
        if (pid := stack.pid(name)) and (v := _proc_cpu_seconds(pid)) is not None
    ]
    readings["simulators"] = sum(simulators)
    readings["bench"] = time.process_time()  # this process, the load generator, all threads
    return {s: v for s, v in readings.items() if v is not None}


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


# ---------------------------------------------------------------------------------- observing


class NotifiedWatcher:
    """Reads the notified and submitted topics (no consumer group, from their ends): dossier code
    -> the first successful notification's record timestamp (Unix seconds), and the submitted
    event's (when intake published it); failures are counted."""

    def __init__(self, bootstrap: str, topic: str, submitted_topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.submitted_topic = submitted_topic
        self.notified: dict[str, float] = {}
        self.published: dict[str, float] = {}
        self.failed: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self.consumer.start()
        assigned = [
            TopicPartition(topic, p)
            for topic in (self.topic, self.submitted_topic)
            for p in range(PARTITIONS)
        ]
        self.consumer.assign(assigned)
        await self.consumer.seek_to_end(*assigned)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            assert self.consumer is not None
            batches = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            for partition, records in batches.items():
                for record in records:
                    code = record.key.decode()
                    if partition.topic == self.submitted_topic:
                        self.published.setdefault(code, record.timestamp / 1000)
                        continue
                    status = json.loads(record.value).get("status")
                    if status in OK_STATUSES:
                        self.notified.setdefault(code, record.timestamp / 1000)
                    else:
                        self.failed[status] += 1

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self.consumer:
            await self.consumer.stop()


async def reporting_counted(stack: Stack, mongo: Any) -> int:
    """Dossiers counted this quarter in reporting's counters, received and notified (read
    directly, not through the service, so that the bench's polling adds nothing to the service's
    commands): the lesser of the two."""
    quarter = quarter_of(datetime.now(UTC))
    counters = mongo[stack.database("reporting")]["counters"]
    rows = await counters.find(
        {"_id": {"$gte": f"{quarter}|", "$lt": f"{quarter}|\uffff"}}
    ).to_list()
    return min(sum(int(row.get(f, 0)) for row in rows) for f in ("received", "notified_delivered"))


# ---------------------------------------------------------------------------------- submitting


@dataclasses.dataclass
class Submitted:
    code: str | None
    began: float  # Unix seconds at the start of the request
    seconds: float
    status: int | str  # the HTTP status, or the name of the client's error


@dataclasses.dataclass(frozen=True)
class Submission:
    """The multipart body every bench request sends (encoded once: encoding it per request would
    put the load generator's CPU, not the platform's, into the figures)."""

    url: str
    body: bytes
    content_type: str

    @classmethod
    def encode(cls, intake: str, channels: list[str]) -> Submission:
        form = {"ten_nhan_hieu": "Sao Mai", "notification_channels": channels}
        request = httpx.Request(
            "POST",
            f"{intake}/api/v1/dossiers",
            **multipart(dossier_json(form=form), trademark_files()),
        )
        return cls(str(request.url), request.read(), request.headers["content-type"])


async def submit(session: aiohttp.ClientSession, submission: Submission) -> Submitted:
    """One submission over aiohttp: about a tenth of httpx's CPU per request on this box
    (`bench/bench_http_clients.py`), which is CPU the platform gets back. A connection the
    server closed as the request went out is retried once with the same Idempotency-Key (what a
    client is told to do: the dossier is stored once)."""
    began, started = time.time(), time.perf_counter()
    headers = {"Content-Type": submission.content_type, "Idempotency-Key": str(uuid.uuid4())}
    for attempt in (1, 2):
        try:
            async with session.post(
                submission.url, data=submission.body, headers=headers
            ) as response:
                status = response.status
                code = (await response.json()).get("dossier_code") if status == 201 else None
            return Submitted(code, began, time.perf_counter() - started, status)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
            if attempt == 2:
                return Submitted(None, began, time.perf_counter() - started, type(error).__name__)
        except (aiohttp.ClientError, TimeoutError) as error:
            return Submitted(None, began, time.perf_counter() - started, type(error).__name__)
    raise AssertionError("unreachable")


async def at_rate(send: Callable[[], Awaitable[Submitted]], n: int, rate: float) -> list[Submitted]:
    """Open loop: the i-th request starts at i / rate seconds, whatever the earlier ones do."""
    began = time.perf_counter()

    async def one(index: int) -> Submitted:
        await asyncio.sleep(max(0.0, began + index / rate - time.perf_counter()))
        return await send()

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def flat_out(
    send: Callable[[], Awaitable[Submitted]], n: int, clients: int
) -> list[Submitted]:
    """Closed loop: `clients` clients, each sending its next request when the last is answered."""
    results: list[Submitted] = []
    started = 0

    async def client() -> None:
        nonlocal started
        while started < n:
            started += 1
            results.append(await send())

    await asyncio.gather(*(client() for _ in range(clients)))
    return results


# ---------------------------------------------------------------------------------- seeding


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _replace(value: Any, mapping: dict[str, str], pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(lambda m: mapping[m.group(0)], value)
    if isinstance(value, dict):
        return {k: _replace(v, mapping, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, mapping, pattern) for v in value]
    return value


def seed_code(template_code: str, n: int) -> str:
    """A code of the same agency on a past day (so never one of today's): <agency>-YYMMDD-NNNN."""
    agency = template_code.rsplit("-", 2)[0]
    day, sequence = divmod(n, 9999)
    when = date(2019, 1, 1) + timedelta(days=day)
    return f"{agency}-{when:%y%m%d}-{sequence + 1:04d}"


def clone(template: dict[str, Any], code: str, n: int) -> dict[str, Any]:
    """The template with its dossier code and every id in it (UUIDs: event ids, notification
    ids, idempotency keys) replaced by ones of seeded dossier `n`."""
    new = seed_code(code, n)
    mapping = {code: new}
    for value in _strings(template):
        for found in UUID.findall(value):
            mapping.setdefault(found, str(uuid.uuid5(SEED_NAMESPACE, f"{found}/{n}")))
    pattern = re.compile("|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)))
    return _replace(template, mapping, pattern)


async def capture_templates(
    stack: Stack, mongo: Any, code: str, within: float
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The warm-up dossier's documents, once nothing about them is pending any more (a copy of
    a pending delivery or portal sync would be sent again)."""
    deadline = time.monotonic() + within
    while True:
        templates: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for service, collections in PER_DOSSIER.items():
            db = mongo[stack.database(service)]
            for name, field in collections.items():
                templates[(service, name)] = await db[name].find({field: code}).to_list()
        present = all(v for (_, name), v in templates.items() if name != "inbox")
        settled = present and all(
            not d.get("outbox_pending") and d.get("status") not in ("pending", "created", "sending")
            for documents in templates.values()
            for d in documents
        )
        if settled or time.monotonic() > deadline:
            return {k: v for k, v in templates.items() if v}
        await asyncio.sleep(0.3)


async def seed(
    stack: Stack,
    mongo: Any,
    templates: dict[tuple[str, str], list[dict[str, Any]]],
    code: str,
    start: int,
    stop: int,
) -> float:
    """Copies `start`..`stop`-1 of the templates, each collection in its own task."""
    began = time.perf_counter()

    async def fill(service: str, name: str, documents: list[dict[str, Any]]) -> None:
        collection = mongo[stack.database(service)][name]
        batch: list[dict[str, Any]] = []
        for n in range(start, stop):
            batch.extend(clone(d, code, n) for d in documents)
            if len(batch) >= SEED_BATCH:
                await collection.insert_many(batch, ordered=False)
                batch = []
        if batch:
            await collection.insert_many(batch, ordered=False)

    await asyncio.gather(*(fill(s, c, docs) for (s, c), docs in templates.items()))
    return time.perf_counter() - began


async def analyze_seeded(stack: Stack) -> float | None:
    """On PostgreSQL, vacuum and analyze the bench's tables once they are seeded, and return the
    seconds it took (None on another backend). A database whose tables grew a little at a time
    has had this done by autovacuum all along; freshly seeded ones have not, and autovacuum's
    first pass over hundreds of thousands of new rows, or plans made without statistics, would
    land in the measured batches."""
    if stack.infra.mongo_backend != "postgresql":
        return None
    schemas = ", ".join(f"'{stack.database(s)}'" for s in SERVICES)
    listed = postgres_server.psql(
        stack.infra,
        "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables "
        f"WHERE schemaname IN ({schemas})",
        database=postgres_server.DATABASE,
    )
    tables = listed.stdout.strip()
    if listed.returncode != 0 or not tables:
        raise SystemExit(f"cannot list the seeded tables: {listed.stderr.strip()}")
    began = time.perf_counter()
    done = await asyncio.to_thread(
        postgres_server.psql,
        stack.infra,
        f"VACUUM (ANALYZE) {tables}",
        database=postgres_server.DATABASE,
    )
    if done.returncode != 0:
        raise SystemExit(f"VACUUM ANALYZE failed: {done.stderr.strip()}")
    return time.perf_counter() - began


# ---------------------------------------------------------------------------------- ceilings


async def timed(label: str, count: int, work: Callable[[], Awaitable[None]]) -> float:
    began = time.perf_counter()
    await work()
    seconds = time.perf_counter() - began
    print(f"  {label:<44} {count / seconds:>9,.0f}/s  ({seconds / count * 1000:.2f} ms each)")
    return count / seconds


async def concurrently(n: int, workers: int, one: Callable[[int], Awaitable[Any]]) -> None:
    async def worker(k: int) -> None:
        for i in range(k, n, workers):
            await one(i)

    await asyncio.gather(*(worker(k) for k in range(workers)))


async def ceilings(
    stack: Stack, mongo: Any, template: dict[str, Any], record: Any, size: int
) -> dict[str, float]:
    """Raw rates of the database and the broker with the pipeline's own payloads."""
    print("-- raw ceilings of this box (same server and broker, payloads of the pipeline)")
    db_name = f"e2e_bench_{stack.token}_ceiling"
    docs = mongo[db_name]["dossiers"]
    body = {k: v for k, v in template.items() if k != "_id"}
    single, many = size // 10, size
    result: dict[str, float] = {}
    try:

        async def insert_loop() -> None:
            for i in range(single):
                await docs.insert_one({**body, "_id": f"s{i}"})

        await timed("insert_one, one client in a loop", single, insert_loop)

        async def insert_one(i: int) -> None:
            await docs.insert_one({**body, "_id": f"c{i}"})

        result["insert_one"] = await timed(
            "insert_one, 16 concurrent", many, lambda: concurrently(many, 16, insert_one)
        )

        async def insert_many() -> None:
            for start in range(0, many, SEED_BATCH):
                batch = [{**body, "_id": f"m{i}"} for i in range(start, start + SEED_BATCH)]
                await docs.insert_many(batch, ordered=False)

        result["insert_many"] = await timed(
            f"insert_many, batches of {SEED_BATCH} (documents)", many, insert_many
        )
        total = single + 2 * many

        async def update_loop() -> None:
            for i in range(single):
                await docs.update_one({"_id": f"c{i}"}, {"$set": {"status.state": 2}})

        await timed(f"update_one by _id, in a loop ({total:,} stored)", single, update_loop)

        async def update_one(i: int) -> None:
            await docs.update_one({"_id": f"m{i}"}, {"$set": {"status.state": 2}})

        result["update_one"] = await timed(
            "update_one by _id, 16 concurrent", many, lambda: concurrently(many, 16, update_one)
        )

        async def find_one(i: int) -> None:
            await docs.find_one({"_id": f"c{i}"})

        result["find_one"] = await timed(
            "find_one by _id, 16 concurrent", many, lambda: concurrently(many, 16, find_one)
        )
    finally:
        await mongo.drop_database(db_name)

    topic = f"bench.e2e-ceiling{stack.suffix}"
    await ensure_topics(stack.infra.kafka_bootstrap, [TopicSpec(topic, 3, None)])
    payload = KafkaRecord(key=record.key, value=record.value, headers=list(record.headers))
    records = ((topic, payload) for _ in range(many))
    count, seconds = await produce(stack.infra.kafka_bootstrap, records)
    print(
        f"  {'aiokafka produce (acks=all), submitted events':<44} {count / seconds:>9,.0f}/s"
        f"  ({len(record.value):,} bytes each)"
    )
    began = time.perf_counter()
    partitions = [TopicPartition(topic, p) for p in range(3)]
    await read_all(stack.infra.kafka_bootstrap, partitions, count)
    consumed = time.perf_counter() - began
    print(f"  {'aiokafka consume, the same':<44} {count / consumed:>9,.0f}/s")
    result["kafka"] = count / (seconds + consumed)
    print(f"  {'aiokafka produce + consume':<44} {result['kafka']:>9,.0f}/s")
    return result


# ---------------------------------------------------------------------------------- a batch


def per_dossier(
    commands: CommandCounts, idle: CommandCounts, seconds: float, n: int
) -> CommandCounts:
    """Commands per dossier, less the idle rate over the batch's duration."""
    return {
        key: (value - idle.get(key, 0.0) * seconds) / n
        for key, value in commands.items()
        if (value - idle.get(key, 0.0) * seconds) / n >= 0.005
    }


def kind(command: str) -> str:
    return "write" if command in WRITES else "read" if command in READS else "other"


async def batch(
    stack: Stack,
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    mongo: Any,
    watcher: NotifiedWatcher,
    label: str,
    send: Callable[[], Awaitable[list[Submitted]]],
    idle: dict[str, CommandCounts],
    ceiling: dict[str, float],
) -> bool:
    n = args.dossiers
    print(f"\n== {label}: {n:,} dossiers")
    before = await scrape_all(stack, client)
    counted_before = await reporting_counted(stack, mongo)
    cpu_before = cpu_seconds(stack)
    probe = SpeedProbe()
    began = time.perf_counter()
    submitted = await send()
    submit_seconds = time.perf_counter() - began
    codes = [s.code for s in submitted if s.code]
    errors = Counter(s.status for s in submitted if not s.code)
    target_opened = before["processing"]["opened"] + len(codes)
    done = {"notified": 0.0, "opened": 0.0, "counted": 0.0}
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        elapsed = time.perf_counter() - began
        if not done["notified"] and all(c in watcher.notified for c in codes):
            done["notified"] = elapsed
        if not done["opened"]:
            opened = (await scrape(client, stack.url("processing")))["opened"]
            if opened >= target_opened:
                done["opened"] = elapsed
        if not done["counted"]:
            if await reporting_counted(stack, mongo) - counted_before >= len(codes):
                done["counted"] = elapsed
        if all(done.values()):
            break
        await asyncio.sleep(0.1)
    seconds = time.perf_counter() - began
    after = await scrape_all(stack, client)
    cpu_after = cpu_seconds(stack)
    probe_ms = probe.stop()
    through = all(done.values())

    http = [s.seconds * 1000 for s in submitted if s.code]
    print(
        f"submitted           {len(codes):,} in {submit_seconds:.1f} s = "
        f"{len(codes) / submit_seconds:,.1f}/s; HTTP p50 {percentile(http, 50):.0f} ms, "
        f"p99 {percentile(http, 99):.0f} ms; errors {dict(errors) or 0}"
    )
    stages = ", ".join(f"{k} {v:.1f} s" if v else f"{k} NOT DONE" for k, v in done.items())
    print(f"all through after   {stages}")
    if through:
        print(f"end to end          {len(codes) / seconds:,.1f} dossiers/s sustained")
    latencies = [
        (watcher.notified[s.code] - s.began) * 1000
        for s in submitted
        if s.code and s.code in watcher.notified
    ]
    if latencies:
        print(
            f"submit -> notified  p50 {percentile(latencies, 50):,.0f} ms, "
            f"p99 {percentile(latencies, 99):,.0f} ms, max {max(latencies):,.0f} ms "
            f"({len(latencies):,} of {len(codes):,} notified; failures {dict(watcher.failed)})"
        )
        print("  p99 by submission time: " + latency_timeline(submitted, watcher.notified))
        print("  stages since submit: " + await stage_timeline(stack, mongo, submitted, watcher))
    if not codes:
        return False
    total_ops = 0.0
    if stack.with_counts:
        print("db commands/dossier (idle background subtracted; by command and collection)")
        totals: dict[str, float] = {}
        for service in SERVICES:
            raw = delta(after[service]["commands"], before[service]["commands"])
            total_ops += sum(raw.values())
            counts = per_dossier(raw, idle[service], seconds, len(codes))
            totals[service] = sum(counts.values())
            by_kind = Counter[str]()
            for (command, _), value in counts.items():
                by_kind[kind(command)] += value
            detail = ", ".join(
                f"{command} {collection or '-'} {value:.2f}"
                for (command, collection), value in sorted(counts.items(), key=lambda i: -i[1])
            )
            kinds = " ".join(f"{k} {v:.1f}" for k, v in sorted(by_kind.items()))
            print(f"  {service:<13} {totals[service]:6.2f}  ({kinds}): {detail}")
        print(f"  {'all':<13} {sum(totals.values()):6.2f}")
        print(
            f"pipeline db ops     {total_ops / seconds:,.0f} commands/s over the batch; raw "
            f"ceiling: update_one x16 {ceiling.get('update_one', 0):,.0f}/s, insert_one x16 "
            f"{ceiling.get('insert_one', 0):,.0f}/s, find_one x16 "
            f"{ceiling.get('find_one', 0):,.0f}/s"
        )
    cpu = {
        s: (cpu_after[s] - cpu_before[s]) * 1000 / len(codes) for s in cpu_after if s in cpu_before
    }
    outside = {s: cpu.pop(s) for s in ("simulators", "bench")}
    in_services = {s: v for s, v in cpu.items() if s in SERVICES}
    in_servers = {s: v for s, v in cpu.items() if s not in SERVICES}
    print(
        "cpu ms/dossier      "
        + ", ".join(f"{s} {v:.1f}" for s, v in in_services.items())
        + f" (services {sum(in_services.values()):.1f}); "
        + ", ".join(f"{s} {v:.1f}" for s, v in in_servers.items())
        + f" (servers {sum(in_servers.values()):.1f}; all {sum(cpu.values()):.1f} on "
        f"{os.cpu_count()} cores)"
    )
    print(
        "  of which the garbage collector's passes: "
        + ", ".join(
            f"{s} {(after[s]['gc'] - before[s]['gc']) * 1000 / len(codes):.2f}" for s in SERVICES
        )
    )
    print(
        "cpu ms/dossier, not the platform's (on the same cores): "
        + ", ".join(f"{s} {v:.1f}" for s, v in outside.items())
    )
    print("rss                 " + ", ".join(f"{s} {rss_mb(stack.pid(s))}" for s in SERVICES))
    if probe_ms:
        print(
            f"machine speed       a fixed Python loop took {statistics.median(probe_ms):.1f} ms of "
            f"CPU (median of {len(probe_ms)}, once a second during the batch; lower is faster)"
        )
    return through


def latency_timeline(
    submitted: list[Submitted], notified: dict[str, float], step: float = 5.0
) -> str:
    """Submit -> notified p99 of the dossiers submitted in each `step` seconds of the batch: a
    tail that comes at the start (consumers catching up) or in bursts (pauses) shows here."""
    through = [s for s in submitted if s.code and s.code in notified]
    if not through:
        return "-"
    start = min(s.began for s in through)
    windows: dict[int, list[float]] = defaultdict(list)
    for s in through:
        windows[int((s.began - start) // step)].append((notified[s.code] - s.began) * 1000)
    return ", ".join(
        f"{w * step:.0f}s {percentile(v, 99):,.0f}" for w, v in sorted(windows.items())
    )


async def stage_timeline(
    stack: Stack, mongo: Any, submitted: list[Submitted], watcher: NotifiedWatcher
) -> str:
    """p50/p99 of when each stage was reached, counted from the submission's start: intake's
    answer, its submitted event published (the record's timestamp), the receipt's delivery
    created (notification's consumer handled that event: the record's `created_at`), the
    message accepted by the mail simulator (`sent_at`) and the notified event appended to its
    topic (its record timestamp). Where a tail forms shows where work queues."""
    began = {s.code: s.began for s in submitted if s.code}
    stages: dict[str, list[float]] = defaultdict(list)
    for s in submitted:
        if s.code:
            stages["answered"].append(s.seconds * 1000)
            if s.code in watcher.published:
                stages["published"].append((watcher.published[s.code] - s.began) * 1000)
    deliveries = mongo[stack.database("notification")]["deliveries"].find(
        {"dossier_code": {"$in": list(began)}},
        {"dossier_code": 1, "created_at": 1, "sent_at": 1},
    )
    firsts: dict[str, dict[str, Any]] = {}
    async for document in deliveries:
        first = firsts.get(document["dossier_code"])
        if first is None or document["created_at"] < first["created_at"]:
            firsts[document["dossier_code"]] = document
    for code, document in firsts.items():
        for stage, field in (("created", "created_at"), ("sent", "sent_at")):
            if value := document.get(field):
                moment = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
                stages[stage].append((moment - began[code]) * 1000)
    for code, moment in watcher.notified.items():
        if code in began:
            stages["notified"].append((moment - began[code]) * 1000)
    return ", ".join(
        f"{stage} {percentile(values, 50):,.0f}/{percentile(values, 99):,.0f} ms"
        for stage, values in stages.items()
        if values
    )


async def idle_rates(
    stack: Stack, client: httpx.AsyncClient, seconds: float
) -> dict[str, CommandCounts]:
    before = await scrape_all(stack, client)
    await asyncio.sleep(seconds)
    after = await scrape_all(stack, client)
    rates = {
        s: {k: v / seconds for k, v in delta(after[s]["commands"], before[s]["commands"]).items()}
        for s in SERVICES
    }
    summary = ", ".join(f"{s} {sum(r.values()):.1f}" for s, r in rates.items())
    print(f"idle db commands/s  {summary} (over {seconds:.0f} s)")
    return rates


# ---------------------------------------------------------------------------------- the run


async def run(stack: Stack, args: argparse.Namespace) -> bool:
    bootstrap = stack.infra.kafka_bootstrap
    await ensure_topics(bootstrap, platform_topics(partitions=PARTITIONS, suffix=stack.suffix))
    print(f"starting the services and simulators (data {stack.config.data_dir})")
    # Dropping a database of 100,000 dossiers takes FerretDB longer than the default time-out.
    mongo = create_mongo_client(stack.infra.mongo_url, appname="bench-e2e", socketTimeoutMS=300_000)
    watcher = NotifiedWatcher(
        bootstrap, DOSSIER_NOTIFIED_TOPIC + stack.suffix, DOSSIER_SUBMITTED_TOPIC + stack.suffix
    )
    channels = args.channels.split(",")
    ok = True
    try:
        began = time.perf_counter()
        await asyncio.to_thread(stack.start)
        print(f"  ready in {time.perf_counter() - began:.1f} s; intake at {stack.url('intake')}")
        await watcher.start()
        # Past the service's capacity requests queue for a connection: no limit on that wait.
        timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
        async with (
            httpx.AsyncClient(timeout=120) as client,
            aiohttp.ClientSession(
                timeout=timeout,
                # below uvicorn's 5 s: the client drops an idle connection before the server does
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=3),
            ) as session,
        ):
            submission = Submission.encode(stack.url("intake"), channels)

            async def send() -> Submitted:
                return await submit(session, submission)

            # Warm-up: connections, caches, the consumers' first fetches; and the templates.
            warm = [await send() for _ in range(3)]
            code = warm[-1].code
            if code is None:
                raise SystemExit(f"warm-up submission refused: HTTP {warm[-1].status}")
            templates = await capture_templates(stack, mongo, code, within=60)
            described = ", ".join(f"{s}.{c} x{len(d)}" for (s, c), d in templates.items())
            print(f"templates           {described}")
            topic = DOSSIER_SUBMITTED_TOPIC + stack.suffix
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            submitted = await read_all(bootstrap, partitions, len(warm))
            ceiling = await ceilings(
                stack,
                mongo,
                templates[("intake", "dossiers")][0],
                submitted[0],
                1000 if args.quick else 10_000,
            )
            stored = len(warm)
            for size in sorted(int(s) for s in args.stored.split(",")):
                if size > stored:
                    seconds = await seed(stack, mongo, templates, code, stored, size)
                    count = (size - stored) * sum(len(d) for d in templates.values())
                    print(
                        f"\n-- seeded {size - stored:,} dossiers ({count:,} documents) in "
                        f"{seconds:.1f} s = {count / seconds:,.0f} documents/s"
                    )
                    if (analyzed := await analyze_seeded(stack)) is not None:
                        print(f"-- VACUUM (ANALYZE) of the seeded tables in {analyzed:.1f} s")
                    stored = size
                print(f"-- {stored:,} dossiers stored in each service")
                idle = await idle_rates(stack, client, 3 if args.quick else 10)
                loads: dict[str, Callable[[], Awaitable[list[Submitted]]]] = {
                    f"offered {args.rate:g}/s": lambda: at_rate(send, args.dossiers, args.rate),
                    f"max rate ({args.clients} clients)": lambda: flat_out(
                        send, args.dossiers, args.clients
                    ),
                }
                for load, submit_all in loads.items():
                    label = f"{stored:,} stored, {load}"
                    ok &= await batch(
                        stack, args, client, mongo, watcher, label, submit_all, idle, ceiling
                    )
                    stored += args.dossiers
    finally:
        await watcher.stop()
        await asyncio.to_thread(stack.stop)
        for service in SERVICES:
            await mongo.drop_database(stack.database(service))
        await mongo.close()
        await delete_topics(bootstrap, stack.suffix)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=1000, help="per batch")
    parser.add_argument("--stored", default="1000,100000", help="dossiers stored, per step")
    parser.add_argument("--rate", type=float, default=50, help="offered dossiers/s")
    parser.add_argument("--clients", type=int, default=16, help="concurrent, at max rate")
    parser.add_argument("--channels", default="email,sms", help="the applicants' channel order")
    parser.add_argument("--profile", choices=("test", "run"), default="test")
    parser.add_argument("--timeout", type=float, default=600, help="per batch, seconds")
    parser.add_argument(
        "--without-command-counts",
        action="store_true",
        help=f"run the services with {COMMAND_COUNTS_ENV}=0 (to measure its overhead)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: --dossiers 20 --stored 100 --rate 20"
    )
    args = parser.parse_args()
    if args.quick:
        args.dossiers, args.stored, args.rate, args.timeout = 20, "100", 20.0, 120.0
    infra = load_config(args.profile)
    if not (port_in_use(infra.kafka_port) and port_in_use(infra.mongo_port)):
        raise SystemExit(
            f"Kafka {infra.kafka_bootstrap} and FerretDB {infra.mongo_url} must be running: "
            f".venv/bin/python -m devstack --profile {args.profile} up"
        )
    folder = Path(tempfile.mkdtemp(prefix="dvc-bench-e2e-"))
    config = dataclasses.replace(
        infra, http_base_port=free_base_port(services.PORT_COUNT), data_dir=folder
    )
    stack = Stack(infra, config, uuid.uuid4().hex[:8], not args.without_command_counts)
    print(
        f"Python {sys.version.split()[0]}; {os.cpu_count()} cores; Kafka {infra.kafka_bootstrap}; "
        f"FerretDB {infra.mongo_url} ({infra.profile} profile, {infra.mongo_backend})"
    )
    ok = False
    try:
        ok = asyncio.run(run(stack, args))
    finally:
        if ok and not args.keep_logs:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"service logs kept in {folder / 'services'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
