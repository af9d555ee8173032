"""Kafka adapters: the broker factory, CloudEvent publishing and explicit topic creation."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY

from shared.cloudevents import CloudEvent
from shared.topics import TopicSpec

log = logging.getLogger(__name__)


def create_broker(
    bootstrap: str, service_name: str, *, graceful_timeout: float = 15.0
) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas and never duplicates on retry.

    On stop it waits up to `graceful_timeout` seconds for in-flight handlers before abandoning
    them (uncommitted, so they are redelivered).
    """
    return KafkaBroker(
        bootstrap,
        client_id=service_name,
        acks="all",
        enable_idempotence=True,
        graceful_timeout=graceful_timeout,
        logger=logging.getLogger(f"faststream.{service_name}"),
        middlewares=[
            KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service_name),
        ],
    )


async def publish_cloud_event(broker: KafkaBroker, topic: str, event: CloudEvent) -> None:
    """Publish one CloudEvent (binary mode, key = subject) and wait for the broker's ack."""
    record = event.to_kafka()
    await broker.publish(
        record.value,
        topic,
        key=record.key,
        headers={name: value.decode() for name, value in record.headers},
    )


async def ensure_topics(
    bootstrap: str, specs: list[TopicSpec], replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=replication_factor,
                    topic_configs=s.configs(),
                )
                for s in missing
            ]
        )
        for name, code, message in _topic_errors(response):
            if code and code != TopicAlreadyExistsError.errno:
                raise RuntimeError(f"could not create topic {name}: {code} {message}")
        return [s.name for s in missing]
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", None) or getattr(response, "topics", [])
    result = []
    for entry in errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 and isinstance(entry[2], str) else None
        result.append((name, code, message))
    return result
