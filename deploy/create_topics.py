"""Create every Kafka topic of the platform (`shared.contracts.topics.platform_topics()`); a
one-shot job.

Idempotent: topics that exist keep their partitions, but get the retention and cleanup policy
of `platform_topics()` (so that changing `DVC_TOPICS_RETENTION_MS` and running the job again
applies it). Used by docker-compose.yml (in Kubernetes the Strimzi topic operator creates and
updates the topics from `KafkaTopic` resources instead).

Environment: DVC_TOPICS_KAFKA_BOOTSTRAP (kafka:9092), DVC_TOPICS_PARTITIONS (3),
DVC_TOPICS_REPLICATION_FACTOR (1), DVC_TOPICS_RETENTION_MS (dossier and public topics: 2 years,
`shared.contracts.topics.DOSSIER_RETENTION_MS`; -1 keeps them forever),
DVC_TOPICS_DEAD_LETTER_RETENTION_MS (30 days, `shared.contracts.topics.DEAD_LETTER_RETENTION_MS`),
DVC_TOPICS_TIMEOUT_SECONDS (120: how long to wait for the broker).
Retention is Decree 13/2023's storage limitation for the personal data the dossier topics carry:
see docs/runbook.md, "Personal data retention".
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.contracts.topics import (
    DEAD_LETTER_RETENTION_MS,
    DOSSIER_RETENTION_MS,
    TopicSpec,
    platform_topics,
)
from shared.runtime.kafka import ensure_topics


async def apply_configs(bootstrap: str, specs: list[TopicSpec]) -> None:
    """Set each topic's configuration (retention, cleanup policy) to its spec's.

    AlterConfigs replaces a topic's whole dynamic configuration: `spec.configs()` is all of
    it for the topics this job manages."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, spec.name, spec.configs())
            for spec in specs
            if spec.configs()
        ]
        for start in range(0, len(resources), 100):
            for response in await admin.alter_configs(resources[start : start + 100]):
                for code, message, _type, name in response.resources:
                    if code:
                        raise RuntimeError(f"could not configure topic {name}: {code} {message}")
    finally:
        await admin.close()


async def create(
    bootstrap: str,
    partitions: int,
    replication: int,
    retention_ms: int,
    dead_letter_retention_ms: int = DEAD_LETTER_RETENTION_MS,
) -> None:
    specs = platform_topics(
        partitions, retention_ms, dead_letter_retention_ms=dead_letter_retention_ms
    )
    created = await ensure_topics(bootstrap, specs, replication_factor=replication)
    await apply_configs(bootstrap, [s for s in specs if s.name not in created])
    print(f"create_topics: {len(created)} created, {len(specs) - len(created)} already there")


def main() -> int:
    env = os.environ.get
    bootstrap = env("DVC_TOPICS_KAFKA_BOOTSTRAP", "kafka:9092")
    partitions = int(env("DVC_TOPICS_PARTITIONS", "3"))
    replication = int(env("DVC_TOPICS_REPLICATION_FACTOR", "1"))
    retention_ms = int(env("DVC_TOPICS_RETENTION_MS", str(DOSSIER_RETENTION_MS)))
    dead_letters_ms = int(env("DVC_TOPICS_DEAD_LETTER_RETENTION_MS", str(DEAD_LETTER_RETENTION_MS)))
    deadline = time.monotonic() + float(env("DVC_TOPICS_TIMEOUT_SECONDS", "120"))
    while True:
        try:
            asyncio.run(create(bootstrap, partitions, replication, retention_ms, dead_letters_ms))
            return 0
        except Exception as exc:  # the broker may still be starting: retry until the deadline
            if time.monotonic() >= deadline:
                print(f"create_topics: giving up on {bootstrap}: {exc}", file=sys.stderr)
                return 1
            print(f"create_topics: {bootstrap} not ready ({exc}); retrying", file=sys.stderr)
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
