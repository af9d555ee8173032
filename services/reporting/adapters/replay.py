"""Replaying reporting's topics: a throwaway consumer (no group, nothing committed) that reads
ranges of offsets of the given topics and hands each event to its subscriber.

Malformed records are skipped and counted (the service dead-letters them; they add nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts.cloudevents import CloudEvent, Contract, MalformedEvent, unwrap
from shared.runtime.consumer import EventHandler
from shared.runtime.kafka import aiokafka_security_options
from shared.runtime.settings import ServiceSettings

Offsets = Mapping[TopicPartition, int]


class TopicReplay:
    """Applies ranges of offsets of `topics` (topic -> event model) with `handlers` (event
    model -> subscriber); `events` and `skipped` count what it applied and what was malformed."""

    def __init__(
        self,
        settings: ServiceSettings,
        topics: Mapping[str, type[Contract]],
        handlers: Mapping[type[Contract], EventHandler],
        client_id: str,
    ) -> None:
        self.settings = settings
        self.topics = dict(topics)
        self.handlers = handlers
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=client_id,
            **aiokafka_security_options(settings),
        )
        self.partitions: list[TopicPartition] = []
        self.events = 0
        self.skipped = 0

    async def start(self) -> None:
        """Connect and take every partition of the topics."""
        await self.consumer.start()
        try:
            self.partitions = await self._partitions()
            self.consumer.assign(self.partitions)
        except BaseException:
            await self.consumer.stop()
            raise

    async def stop(self) -> None:
        await self.consumer.stop()

    async def beginning_offsets(self) -> dict[TopicPartition, int]:
        offsets: dict[TopicPartition, int] = await self.consumer.beginning_offsets(self.partitions)
        return offsets

    async def end_offsets(self) -> dict[TopicPartition, int]:
        offsets: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        return offsets

    async def run(self, starts: Offsets, ends: Offsets) -> None:
        """Apply every record from `starts` (included) to `ends` (excluded), per partition."""
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
        model = self.topics[record.topic]
        try:
            cloud_event = CloudEvent.from_kafka(record.value, record.headers)
            event = unwrap(cloud_event, [model])
        except MalformedEvent:
            self.skipped += 1
            return
        await self.handlers[model](event, cloud_event)
        self.events += 1

    async def _partitions(self) -> list[TopicPartition]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap,
            **aiokafka_security_options(self.settings),
        )
        await admin.start()
        try:
            described = await admin.describe_topics(list(self.topics))
        finally:
            await admin.close()
        return [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
