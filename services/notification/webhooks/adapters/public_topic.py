"""Reading the public dossier-status topic again from a moment (for a replay).

The public topic is kept forever, so a replay reads its records again from Kafka: from the offset
of the first record at or after the moment, up to the end offsets when the reading starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts.events import PublicDossierStatus
from shared.runtime.kafka import aiokafka_security_options
from shared.runtime.settings import ServiceSettings

BATCH = 500


class PublicTopicReader:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.topic = settings.topic(PublicDossierStatus.topic)

    async def records_since(self, since: datetime) -> AsyncIterator[list[Any]]:
        """The topic's records from `since` up to the end offsets at the start, in batches of at
        most `BATCH` (possibly empty) records."""
        settings = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{settings.service_name}-replay",
            **aiokafka_security_options(settings),  # type: ignore[arg-type]
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic, p) for p in await self.partitions()]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            remaining: dict[TopicPartition, int] = {}  # partition -> end offset at the start
            for tp in partitions:
                start = starts.get(tp)
                if start is not None and start.offset < ends[tp]:
                    consumer.seek(tp, start.offset)
                    remaining[tp] = ends[tp]
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=BATCH)
                records = [
                    record
                    for tp, found in batches.items()
                    for record in found
                    if record.offset < remaining.get(tp, 0)
                ]
                for tp in list(remaining):
                    if await consumer.position(tp) >= remaining[tp]:
                        del remaining[tp]
                yield records
        finally:
            await consumer.stop()

    async def partitions(self) -> list[int]:
        settings = self.settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            **aiokafka_security_options(settings),  # type: ignore[arg-type]
        )
        await admin.start()
        try:
            [described] = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        return sorted(p["partition"] for p in described["partitions"])
