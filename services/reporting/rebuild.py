"""Rebuild reporting's read models from the start of the topics, then swap them in atomically.

    python -m services.reporting.rebuild      # settings from DVC_REPORTING_* like the service

1. Capture the end offsets of every dossier topic and the catalogue topic, read them from the
   beginning with a throwaway consumer (no group, nothing committed) and apply the service's own
   handlers (`handlers.handlers_for`) into a fresh set of collections, `rebuild_<ts>_*`.
2. Swap: one `update_one` on the pointer document (`read_model_pointer`, `_id: "active"`). The
   running service need not stop: its `ActiveStore` re-reads the pointer at least every
   `POINTER_TTL` seconds, and from then on its consumer writes to, and its API reads from, the
   new set.
3. Catch up: events the service applied to the old set after step 1's end offsets (or before it
   noticed the pointer) are applied to the new set too: after waiting `2 × POINTER_TTL` the
   rebuild reads from step 1's end offsets to fresh end offsets. Handlers are idempotent per event
   id, so what both wrote is counted once.
4. Drop the old set's collections (unless `--keep-old`).

Malformed records are skipped and counted (the service dead-letters them; they add nothing).
A failing handler aborts the rebuild before the swap: the active set is untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase

from services.reporting.handlers import handlers_for
from services.reporting.settings import ReportingSettings
from services.reporting.store import (
    POINTER_COLLECTION,
    POINTER_ID,
    ReportingStore,
    read_active_prefix,
)
from shared.cloudevents import CloudEvent, MalformedEvent, unwrap
from shared.mongo import create_mongo_client

log = logging.getLogger(__name__)

POINTER_TTL = 1.0  # must match ActiveStore's default ttl
COLLECTIONS = ("dossiers", "counters", "procedures")


@dataclass
class RebuildResult:
    prefix: str
    previous_prefix: str
    events: int
    skipped: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def _partitions(settings: ReportingSettings, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **_kafka_options(settings)
    )
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]


def _kafka_options(settings: ReportingSettings) -> dict[str, Any]:
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {
        "security_protocol": settings.kafka_security_protocol,
        "ssl_context": ssl.create_default_context(cafile=settings.kafka_ssl_cafile),
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


class _Replay:
    """Applies a range of offsets of the reporting topics to one store."""

    def __init__(self, consumer: AIOKafkaConsumer, store: ReportingStore, models: Mapping) -> None:
        self.consumer = consumer
        self.handlers = handlers_for(store)
        self.models = models  # topic -> event model
        self.events = 0
        self.skipped = 0

    async def run(
        self, starts: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]
    ) -> None:
        pending = {tp for tp in ends if ends[tp] > starts[tp]}
        for tp in pending:
            self.consumer.seek(tp, starts[tp])
        while pending:
            batches = await self.consumer.getmany(*pending, timeout_ms=500, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        await self._apply(record)
                if await self.consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)

    async def _apply(self, record: Any) -> None:
        model = self.models[record.topic]
        try:
            cloud_event = CloudEvent.from_kafka(record.value, record.headers)
            event = unwrap(cloud_event, [model])
        except MalformedEvent:
            self.skipped += 1
            return
        await self.handlers[model](event, cloud_event)
        self.events += 1


async def rebuild(
    settings: ReportingSettings,
    db: AsyncDatabase[dict[str, Any]] | None = None,
    *,
    keep_old: bool = False,
    pointer_ttl: float = POINTER_TTL,
) -> RebuildResult:
    mongo = None
    if db is None:
        mongo = create_mongo_client(settings.mongo_url, appname="reporting-rebuild")
        db = mongo[settings.database_name]
    prefix = f"rebuild_{datetime.now(UTC):%Y%m%d%H%M%S%f}_"
    store = ReportingStore(db, prefix)
    await store.ensure_indexes()
    models = {settings.topic(model.topic): model for model in handlers_for(store)}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="reporting-rebuild",
        **_kafka_options(settings),
    )
    await consumer.start()
    try:
        parts = await _partitions(settings, list(models))
        consumer.assign(parts)
        replay = _Replay(consumer, store, models)
        started = time.perf_counter()
        begins = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
        await replay.run(begins, ends)
        seconds = time.perf_counter() - started
        replayed = replay.events

        previous = await read_active_prefix(db)
        await db[POINTER_COLLECTION].update_one(
            {"_id": POINTER_ID},
            {"$set": {"prefix": prefix, "swapped_at": datetime.now(UTC)}},
            upsert=True,
        )
        # Let every ActiveStore see the swap, then apply what the old set got meanwhile.
        await asyncio.sleep(2 * pointer_ttl)
        await replay.run(ends, await consumer.end_offsets(parts))
    finally:
        await consumer.stop()
    try:
        if not keep_old:
            for name in COLLECTIONS:
                await db.drop_collection(f"{previous}{name}")
    finally:
        if mongo is not None:
            await mongo.close()
    return RebuildResult(prefix, previous, replayed, replay.skipped, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep-old", action="store_true", help="keep the previous collections")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    result = asyncio.run(rebuild(ReportingSettings(), keep_old=args.keep_old))
    print(
        f"rebuilt into {result.prefix!r} (was {result.previous_prefix!r}): "
        f"{result.events} events in {result.seconds:.2f} s = "
        f"{result.events_per_second:.0f} events/s; {result.skipped} malformed skipped"
    )


if __name__ == "__main__":
    main()
