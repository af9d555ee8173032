"""Notifications per second, end to end, against the real broker, database and an SMTP server.

    .venv/bin/python -m devstack --profile test up
    .venv/bin/python bench/bench_notification.py --count 1000

N submitted events (contact: e-mail only) are published to fresh suffixed topics, then the
notification service starts in-process and the clock runs until every message has its delivery
record `sent`, its `DossierNotified` event published (outbox empty) and read back from the topic.
The SMTP server is `aiosmtpd`'s Sink in a separate process (it accepts and discards), so it does
not share this process's interpreter. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.notification.main import create_app
from services.notification.settings import NotificationSettings
from shared.contracts.cloudevents import wrap
from shared.contracts.events import (
    Applicant,
    ApplicantKind,
    Channel,
    Contact,
    DossierSubmitted,
)
from shared.contracts.topics import (
    DOSSIER_NOTIFIED_TOPIC,
    DOSSIER_PROCESSED_TOPIC,
    DOSSIER_SUBMITTED_TOPIC,
    NOTIFICATION_GROUP,
    TopicSpec,
    dead_letter_topic,
)
from shared.runtime.kafka import ensure_topics
from shared.runtime.mongo import create_mongo_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_smtp(port: int) -> None:
    async with asyncio.timeout(15):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)


def sample_event(index: int) -> DossierSubmitted:
    day, sequence = divmod(index, 10_000)
    return DossierSubmitted(
        dossier_code=f"000.00.21.G12-2611{10 + day:02d}-{sequence:04d}",
        occurred_at=datetime.now(UTC),
        procedure_code="1.004473",
        unit_code="G12",
        level=4,
        channel=Channel.ONLINE,
        applicant=Applicant(
            kind=ApplicantKind.PERSON, name="Nguyễn Văn A", identifier="001203004567"
        ),
        contact=Contact(email=f"citizen{index}@example.vn"),
        fee_vnd=300_000,
    )


async def run(args: argparse.Namespace, smtp_port: int) -> None:
    unique = uuid.uuid4().hex[:8]
    settings = NotificationSettings(
        environment="test",
        kafka_bootstrap=args.bootstrap,
        mongo_url=args.mongo_url,
        mongo_database=f"bench_notification_{unique}",
        topic_suffix=f".bench{unique}",
        smtp_port=smtp_port,
        smtp_pool_size=args.smtp_connections,
        delivery_workers=args.workers,
        delivery_poll_seconds=0.5,
        outbox_poll_seconds=0.2,
    )
    topics = [settings.topic(t) for t in (DOSSIER_SUBMITTED_TOPIC, DOSSIER_PROCESSED_TOPIC)]
    notified = settings.topic(DOSSIER_NOTIFIED_TOPIC)
    specs = [TopicSpec(t, args.partitions, None) for t in [*topics, notified]]
    specs += [TopicSpec(dead_letter_topic(t, NOTIFICATION_GROUP), 1, None) for t in topics]
    mongo = create_mongo_client(args.mongo_url)
    try:
        await wait_smtp(smtp_port)
        await ensure_topics(args.bootstrap, specs)

        producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        started = time.perf_counter()
        for i in range(args.count):
            record = wrap(sample_event(i), "/bench").to_kafka()
            await producer.send(topics[0], record.value, key=record.key, headers=record.headers)
        await producer.flush()
        await producer.stop()
        print(f"published {args.count} submitted events in {time.perf_counter() - started:.2f}s")

        deliveries = mongo[settings.mongo_database]["deliveries"]
        consumer = AIOKafkaConsumer(
            notified,
            bootstrap_servers=args.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        app = create_app(settings)
        try:
            async with app.router.lifespan_context(app):
                started = time.perf_counter()
                samples: list[tuple[float, int]] = []
                published = 0
                async with asyncio.timeout(args.timeout):
                    while published < args.count:  # progress = notified events read back
                        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                        published += sum(len(b) for b in batches.values())
                        samples.append((time.perf_counter() - started, published))
                elapsed = time.perf_counter() - started
        finally:
            await consumer.stop()
        first_sent = next((t for t, n in samples if n), 0.0)
        sent = await deliveries.count_documents({"status": "sent"})
        pending = await deliveries.count_documents({"outbox_pending": True})

        print(f"messages            {args.count} (e-mail over SMTP, {args.smtp_connections} conns)")
        print(f"end to end          {elapsed:.2f}s  ->  {args.count / elapsed:.0f} messages/s")
        print(f"first notified      {first_sent:.2f}s after start (consumer join included)")
        for low, high in ((0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.0)):
            window = [x for x in samples if low * args.count <= x[1] <= high * args.count]
            if len(window) >= 2 and window[-1][0] > window[0][0]:
                rate = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
                print(f"rate {low:>4.0%}..{high:<4.0%}      {rate:.0f} messages/s")
        print(f"notified events     {published} read back from {notified}")
        print(f"delivery records    {sent} sent, {pending} with an unpublished outbox")
        print(f"workers             {args.workers}, partitions {args.partitions}")
    finally:
        await mongo.drop_database(settings.mongo_database)
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--smtp-connections", type=int, default=16)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("DVC_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    )
    parser.add_argument(
        "--mongo-url", default=os.environ.get("DVC_TEST_MONGO_URL", "mongodb://127.0.0.1:37017/")
    )
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.WARNING)
    logging.getLogger("faststream.notification").setLevel(logging.WARNING)
    args = parser.parse_args()
    smtp_port = free_port()
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{smtp_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(run(args, smtp_port))
    finally:
        sink.terminate()
        sink.wait(10)


if __name__ == "__main__":
    main()
