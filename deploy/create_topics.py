"""Create every Kafka topic of the platform (`shared.topics.platform_topics()`); a one-shot job.

Idempotent: topics that exist are left alone. Used by docker-compose.yml (in Kubernetes the
Strimzi topic operator creates the topics from `KafkaTopic` resources instead).

Environment: DVC_TOPICS_KAFKA_BOOTSTRAP (kafka:9092), DVC_TOPICS_PARTITIONS (3),
DVC_TOPICS_REPLICATION_FACTOR (1), DVC_TOPICS_RETENTION_MS (-1: keep forever),
DVC_TOPICS_TIMEOUT_SECONDS (120: how long to wait for the broker).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from shared.kafka import ensure_topics
from shared.topics import platform_topics


async def create(bootstrap: str, partitions: int, replication: int, retention_ms: int) -> None:
    specs = platform_topics(partitions, retention_ms)
    created = await ensure_topics(bootstrap, specs, replication_factor=replication)
    print(f"create_topics: {len(created)} created, {len(specs) - len(created)} already there")


def main() -> int:
    env = os.environ.get
    bootstrap = env("DVC_TOPICS_KAFKA_BOOTSTRAP", "kafka:9092")
    partitions = int(env("DVC_TOPICS_PARTITIONS", "3"))
    replication = int(env("DVC_TOPICS_REPLICATION_FACTOR", "1"))
    retention_ms = int(env("DVC_TOPICS_RETENTION_MS", "-1"))
    deadline = time.monotonic() + float(env("DVC_TOPICS_TIMEOUT_SECONDS", "120"))
    while True:
        try:
            asyncio.run(create(bootstrap, partitions, replication, retention_ms))
            return 0
        except Exception as exc:  # the broker may still be starting: retry until the deadline
            if time.monotonic() >= deadline:
                print(f"create_topics: giving up on {bootstrap}: {exc}", file=sys.stderr)
                return 1
            print(f"create_topics: {bootstrap} not ready ({exc}); retrying", file=sys.stderr)
            time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
