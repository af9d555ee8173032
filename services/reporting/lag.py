"""Consumer lag per group and topic: what each service's group has yet to read.

Reporting exports it for every platform group (`dvc_consumer_lag_messages`), so that the backlog
alert needs no separate exporter: committed offsets come from the group coordinator, end offsets
from the partition leaders.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import aiokafka_security_options
from shared.settings import ServiceSettings


async def consumer_lag(
    settings: ServiceSettings, groups: Sequence[str]
) -> dict[tuple[str, str], int]:
    """{(group, topic): messages not yet consumed}, over the partitions the group committed."""
    options = {"bootstrap_servers": settings.kafka_bootstrap, **aiokafka_security_options(settings)}
    admin = AIOKafkaAdminClient(**options)
    reader = AIOKafkaConsumer(enable_auto_commit=False, **options)  # no group: reads offsets only
    await admin.start()
    await reader.start()
    try:
        lag: dict[tuple[str, str], int] = {}
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            positions = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
            if not positions:
                continue
            ends = await reader.end_offsets(list(positions))
            for partition, offset in positions.items():
                key = (group, partition.topic)
                lag[key] = lag.get(key, 0) + max(ends[partition] - offset, 0)
        return lag
    finally:
        await reader.stop()
        await admin.close()
