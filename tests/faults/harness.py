"""The whole platform as separate processes, a steady load of online dossiers, and the checks that
nothing was lost or done twice after a fault (issue 17).

The services and simulators run as devstack runs them (`devstack.services.start`), on free ports,
against a private Kafka and FerretDB (tests/faults/infrastructure.py), with their own topics
(suffix) and databases, so that killing one is a real `kill -9` of a real process. Applicants
ask for e-mail, which the mail simulator keeps: each message carries its dossier and notification
id.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devstack import services
from devstack.config import StackConfig
from devstack.processes import port_in_use
from shared.contracts.topics import platform_topics
from shared.runtime.kafka import ensure_topics
from shared.runtime.mongo import create_mongo_client
from tests.intake_samples import dossier_json, multipart, trademark_files
from tests.kafka_helpers import read_records

SERVICES = services.SERVICES


@contextmanager
def environment_restored() -> Iterator[None]:
    """`Platform.start` puts the services' settings in `os.environ` (`services.start` passes it
    on to them): as it was afterwards, so that no later test's services inherit them."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def free_base_port(count: int) -> int:
    """A free block of `count` ports (and the one below it), picked at random below Linux's
    ephemeral range first: two fault suites started at once (a developer's and CI's) would
    otherwise both take the first free block and race for it."""
    low = list(range(30001, 32700, 50))
    random.shuffle(low)
    candidates: list[int] = low + list(range(32701, 60000, 50))
    for base in candidates:
        if not any(port_in_use(base + i) for i in range(-1, count)):
            return base
    raise RuntimeError("no free block of ports")


@dataclass
class Platform:
    """The four services and the simulators, with this run's topics and databases."""

    config: StackConfig
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    # Every dossier answered 201 since the start, across faults: each is checked after each fault.
    accepted: list[str] = field(default_factory=list)

    @property
    def suffix(self) -> str:
        return f".fault{self.token}"

    def database(self, service: str) -> str:
        return f"fault_{self.token}_{service}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{services.port(self.config, name)}"

    async def start(self) -> None:
        copies = 3 if self.config.kafka_brokers > 1 else 1  # a cluster: as production
        await ensure_topics(
            self.config.kafka_bootstrap,
            platform_topics(suffix=self.suffix),
            replication_factor=copies,
        )
        for service in SERVICES:  # `services.start` adds its own environment on top of this
            prefix = f"DVC_{service.upper()}_"
            os.environ[prefix + "TOPIC_SUFFIX"] = self.suffix
            os.environ[prefix + "MONGO_DATABASE"] = self.database(service)
            # Quick group joins after a restart (production keeps Kafka's 3 s).
            os.environ[prefix + "CONSUMER_HEARTBEAT_INTERVAL_MS"] = "300"
            os.environ[prefix + "CONSUMER_FETCH_MAX_WAIT_MS"] = "300"
        os.environ["DVC_INTAKE_SUBMISSIONS_PER_MINUTE"] = "1000000"
        for service in SERVICES:
            await asyncio.to_thread(services.start, self.config, service)
        await self.wait_ready()

    async def wait_ready(self) -> None:
        for service in SERVICES:
            await asyncio.to_thread(services.wait_ready, self.config, service, 120)

    def kill(self, service: str, how: signal.Signals = signal.SIGKILL) -> None:
        pid = services.process(self.config, service).pid()
        assert pid is not None, f"{service} is not running"
        os.kill(pid, how)
        deadline = time.monotonic() + 30
        while services.process(self.config, service).pid() is not None:
            assert time.monotonic() < deadline, f"{service} did not exit after {how.name}"
            time.sleep(0.05)

    async def restart(self, service: str) -> float:
        """Start `service` again; seconds until it is ready."""
        began = time.monotonic()
        await asyncio.to_thread(services.start, self.config, service)
        await asyncio.to_thread(services.wait_ready, self.config, service, 120)
        return time.monotonic() - began

    async def all_ready(self, client: httpx.AsyncClient) -> bool:
        answers = await asyncio.gather(
            *(client.get(f"{self.url(s)}/health/ready") for s in SERVICES),
            return_exceptions=True,
        )
        return all(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers)

    def stop(self) -> None:
        for name in services.PROCESSES:
            services.process(self.config, name).stop(timeout=15)

    async def drop(self) -> None:
        mongo = create_mongo_client(self.config.mongo_url)
        try:
            for service in SERVICES:
                await mongo.drop_database(self.database(service))
        finally:
            await mongo.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.config.kafka_bootstrap)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if self.token in t]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()


@dataclass
class Load:
    """Online dossiers submitted at a steady rate; the codes of those answered 201."""

    url: str
    rate: float
    accepted: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one(self, client: httpx.AsyncClient) -> None:
        form = {"ten_nhan_hieu": "Sao Mai", "notification_channels": ["email"]}
        try:
            response = await client.post(
                f"{self.url}/api/v1/dossiers",
                **multipart(dossier_json(form=form), trademark_files()),
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
        except httpx.HTTPError as error:  # intake killed mid-request: not answered 201
            self.refused[type(error).__name__] += 1
            return
        if response.status_code == 201:
            self.accepted.append(response.json()["dossier_code"])
        else:
            self.refused[str(response.status_code)] += 1

    async def _run(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=30) as client:
            began, sent = time.monotonic(), 0
            while not self._stop.is_set():
                task = asyncio.create_task(self._one(client))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
                delay = began + sent / self.rate - time.monotonic()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._stop.wait(), delay)
                    except TimeoutError:
                        pass
            await asyncio.gather(*pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def burst(self, count: int) -> None:
        """`count` submissions at once on top of the steady rate: a backlog for the consumers."""
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(self._one(client) for _ in range(count)))

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


@dataclass
class Outcome:
    """What became of the accepted dossiers."""

    accepted: int
    without_case: list[str]
    mail_missing: list[str]
    mail_duplicates: int  # the same notification delivered more than once (same Message-ID)
    messages_per_dossier_over_one: list[str]  # two different notifications for one receipt
    not_counted: list[str]
    counted_twice: int
    dead_letters: int
    # Dossiers that went all the way although their submission was not answered 201 (intake
    # killed, or the database lost, between storing and answering): not an error of the platform.
    unanswered_but_stored: int = 0

    @property
    def lost(self) -> int:
        return len(set(self.without_case) | set(self.mail_missing) | set(self.not_counted))

    @property
    def duplicated(self) -> int:
        return len(self.messages_per_dossier_over_one) + self.counted_twice

    @property
    def settled(self) -> bool:
        return self.lost == 0 and self.dead_letters == 0


async def outcome(platform: Platform, client: httpx.AsyncClient, codes: list[str]) -> Outcome:
    mongo = create_mongo_client(platform.config.mongo_url)
    try:
        cases = {
            doc["_id"]
            async for doc in mongo[platform.database("processing")]["cases"].find({}, {"_id": 1})
        }
        reporting = mongo[platform.database("reporting")]
        facts = {doc["_id"] async for doc in reporting["dossiers"].find({}, {"_id": 1})}
        # Each dossier counted once in the quarterly counters (received, all units).
        received = sum(
            [int(row.get("received", 0)) async for row in reporting["counters"].find({})]
        )
    finally:
        await mongo.close()
    messages = (await client.get(f"{platform.url(services.MAIL_SIMULATOR)}/messages")).json()
    ours = [m for m in messages["messages"] if m.get("dossier") in set(codes)]
    per_notification = Counter(m["notification_id"] for m in ours)
    ids_per_dossier: dict[str, set[str]] = {}
    for message in ours:
        ids_per_dossier.setdefault(message["dossier"], set()).add(message["notification_id"])
    return Outcome(
        accepted=len(codes),
        without_case=[c for c in codes if c not in cases],
        mail_missing=[c for c in codes if c not in ids_per_dossier],
        mail_duplicates=sum(n - 1 for n in per_notification.values()),
        messages_per_dossier_over_one=[c for c, ids in ids_per_dossier.items() if len(ids) > 1],
        not_counted=[c for c in codes if c not in facts],
        # Against every dossier reporting knows, not only the answered ones (see above).
        counted_twice=max(0, received - len(facts)),
        dead_letters=await dead_letter_count(platform),
        unanswered_but_stored=len(cases - set(codes)),
    )


async def redeliver(platform: Platform, topic: str, count: int) -> int:
    """Put `count` records of `topic` (this run's, from its beginning: handled long ago) back on
    it as they were: the at-least-once redelivery every consumer must recognise as a duplicate.
    The number put back."""
    name = topic + platform.suffix
    records = (await read_records(platform.config.kafka_bootstrap, name, count))[:count]
    writer = AIOKafkaProducer(bootstrap_servers=platform.config.kafka_bootstrap, acks="all")
    await writer.start()
    try:
        for record in records:
            await writer.send_and_wait(
                name, record.value, key=record.key, headers=list(record.headers)
            )
    finally:
        await writer.stop()
    return len(records)


async def dead_letter_count(platform: Platform) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.config.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=platform.config.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        topics = [t for t in await admin.list_topics() if platform.token in t and t.endswith("dlq")]
        partitions = [TopicPartition(t, 0) for t in topics]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return sum(ends.values())
    finally:
        await consumer.stop()
        await admin.close()


async def settle(
    platform: Platform,
    client: httpx.AsyncClient,
    codes: list[str],
    limit_seconds: float,
    stages: dict[str, float] | None = None,
) -> tuple[Outcome, float]:
    """Wait until every accepted dossier went all the way (or `limit_seconds`); the last outcome
    and the seconds it took. `stages` gets the seconds until every dossier had its case, its
    e-mail and its count."""
    began = time.monotonic()
    while True:
        result = await outcome(platform, client, codes)
        elapsed = time.monotonic() - began
        if stages is not None:
            for stage, missing in (
                ("case", result.without_case),
                ("mail", result.mail_missing),
                ("count", result.not_counted),
            ):
                if not missing:
                    stages.setdefault(stage, elapsed)
        if (result.settled and await platform.all_ready(client)) or elapsed > limit_seconds:
            return result, elapsed
        await asyncio.sleep(0.5)


def describe(fault: str, submitted: int, result: Outcome, recovered: float, ready: float) -> str:
    return (
        f"{fault:<22} submitted {submitted:>3} (all runs {result.accepted:>4})  "
        f"lost {result.lost}  "
        f"duplicated {result.duplicated}  (same-id mail resends {result.mail_duplicates})  "
        f"dead letters {result.dead_letters}  ready after {ready:.1f}s  "
        f"settled {recovered:.1f}s after the restart"
    )


def summary(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
