"""The topics job (deploy/create_topics.py) gives new and existing topics the retention of
shared/contracts/topics.py (Decree 13/2023 storage limitation), on the real broker."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.create_topics import apply_configs
from shared.contracts.topics import (
    CATALOGUE_TOPIC,
    DAY_MS,
    DEAD_LETTER_RETENTION_MS,
    DOSSIER_RETENTION_MS,
    DOSSIER_SUBMITTED_TOPIC,
    PROCESSING_GROUP,
    TopicSpec,
    dead_letter_topic,
    platform_topics,
)
from shared.runtime.kafka import ensure_topics


async def topic_configs(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for _code, _message, _type, name, entries in response.resources:
            found[name] = {entry[0]: entry[1] for entry in entries}
    return found


async def test_new_topics_get_the_dossier_and_dead_letter_retention(
    kafka_bootstrap: str, unique: str
) -> None:
    suffix = f".{unique}"
    await ensure_topics(kafka_bootstrap, platform_topics(partitions=1, suffix=suffix))
    submitted = DOSSIER_SUBMITTED_TOPIC + suffix
    dead_letters = dead_letter_topic(submitted, PROCESSING_GROUP)
    async with asyncio.timeout(30):  # a new topic's configuration may take a moment to show
        while True:
            configs = await topic_configs(kafka_bootstrap, [submitted, dead_letters])
            if all("retention.ms" in configs.get(name, {}) for name in (submitted, dead_letters)):
                break
            await asyncio.sleep(0.2)
    assert configs[submitted]["retention.ms"] == str(DOSSIER_RETENTION_MS)
    assert configs[dead_letters]["retention.ms"] == str(DEAD_LETTER_RETENTION_MS)


async def test_the_job_applies_a_changed_retention_to_existing_topics(
    kafka_bootstrap: str, unique: str
) -> None:
    suffix = f".{unique}"
    forever = platform_topics(partitions=1, retention_ms=-1, suffix=suffix)
    forever = [TopicSpec(s.name, s.partitions, -1, s.compacted) for s in forever]
    await ensure_topics(kafka_bootstrap, forever)  # an older deployment: kept forever

    wanted = platform_topics(
        partitions=1, retention_ms=400 * DAY_MS, suffix=suffix, dead_letter_retention_ms=DAY_MS
    )
    await apply_configs(kafka_bootstrap, wanted)

    submitted = DOSSIER_SUBMITTED_TOPIC + suffix
    dead_letters = dead_letter_topic(submitted, PROCESSING_GROUP)
    catalogue = CATALOGUE_TOPIC + suffix
    async with asyncio.timeout(30):  # the broker applies a change through its metadata log
        while True:
            configs = await topic_configs(kafka_bootstrap, [submitted, dead_letters, catalogue])
            if configs.get(dead_letters, {}).get("retention.ms") == str(DAY_MS):
                break
            await asyncio.sleep(0.2)
    assert configs[submitted]["retention.ms"] == str(400 * DAY_MS)
    assert configs[dead_letters]["retention.ms"] == str(DAY_MS)
    assert configs[catalogue]["cleanup.policy"] == "compact"  # replaced whole: still compacted
