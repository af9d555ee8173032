"""Kafka adapters: the broker factory, CloudEvent publishing and explicit topic creation."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Collection, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLScram256, SASLScram512
from prometheus_client import REGISTRY

from shared.contracts.cloudevents import CloudEvent
from shared.contracts.topics import TopicSpec
from shared.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


def kafka_security(settings: ServiceSettings) -> BaseSecurity | None:
    """TLS, and SCRAM credentials, as the settings ask (None: plain, for one machine)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_security_protocol == "SSL":
        return BaseSecurity(ssl_context=context)
    if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
        raise ValueError("SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    scram = SASLScram512 if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
    return scram(
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
    )


def aiokafka_security_options(settings: ServiceSettings) -> dict[str, object]:
    """The same security as `kafka_security`, for plain aiokafka clients (admin, offsets)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, object] = {
        "security_protocol": settings.kafka_security_protocol,
        "ssl_context": ssl.create_default_context(cafile=settings.kafka_ssl_cafile),
    }
    if settings.kafka_security_protocol == "SASL_SSL":
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=(
                settings.kafka_sasl_password.get_secret_value()
                if settings.kafka_sasl_password
                else None
            ),
        )
    return options


def idle_consumer_options(settings: ServiceSettings) -> dict[str, int]:
    """aiokafka consumer options that keep an idle consumer cheap, with no cost in latency: the
    broker holds a fetch until records arrive (or `consumer_fetch_max_wait_ms`), and the
    fetcher's background loop, which is woken by every event it waits for, ticks once a second
    rather than five times.

    The long poll has one cost: a member asked to rejoin its group (another member joined, e.g.
    a service's second consumer in the same group at start-up) notices it at its next heartbeat
    and rejoins once its fetch in flight returns, so the join takes up to
    `consumer_heartbeat_interval_ms` + `consumer_fetch_max_wait_ms`. Tests shorten both."""
    return {
        "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "heartbeat_interval_ms": settings.consumer_heartbeat_interval_ms,
        "consumer_timeout_ms": 1000,
    }


def long_poll_when_idle(consumer: AIOKafkaConsumer, settings: ServiceSettings) -> None:
    """Make a started consumer's long poll `consumer_idle_fetch_max_wait_ms` while it has no
    record in hand, and `consumer_fetch_max_wait_ms` while it has.

    The short one is needed only while records are in hand: aiokafka keeps one fetch in flight
    per broker and leaves the partitions with records in hand out of it, so the broker holds a
    fetch for the idle ones for the whole wait while the busy ones' next records wait behind it.
    A fetch sent with nothing in hand names every partition and ends as soon as records arrive
    on any of them, so it may wait long: an idle consumer sends a fetch every 5 s instead of
    every 0.5 s. This reaches into aiokafka's fetcher (0.12-0.13: `_fetcher`,
    `_get_actions_per_node`, `_records`, `_fetch_max_wait_ms`); where those are missing the
    consumer keeps its fixed long poll, and `tests/integration/test_kafka_long_poll.py` says so."""
    fetcher: Any = getattr(consumer, "_fetcher", None)
    plan = getattr(fetcher, "_get_actions_per_node", None)
    if plan is None or not all(hasattr(fetcher, a) for a in ("_records", "_fetch_max_wait_ms")):
        log.warning("aiokafka's fetcher changed: the consumer keeps a fixed long poll")
        return
    busy, idle = settings.consumer_fetch_max_wait_ms, settings.consumer_idle_fetch_max_wait_ms

    def planned(assignment: Any) -> Any:
        fetcher._fetch_max_wait_ms = busy if fetcher._records else idle
        return plan(assignment)

    fetcher._get_actions_per_node = planned


def create_broker(
    bootstrap: str,
    service_name: str,
    *,
    graceful_timeout: float = 15.0,
    security: BaseSecurity | None = None,
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
        security=security,
        logger=logging.getLogger(f"faststream.{service_name}"),
        log_level=logging.DEBUG,  # "Received"/"Processed" per message: debug detail only
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


async def publish_cloud_events(
    broker: KafkaBroker, topic: str, events: Sequence[CloudEvent]
) -> None:
    """Publish many CloudEvents and wait once for all the broker's acks (order kept per key)."""
    pending = []
    for event in events:
        record = event.to_kafka()
        pending.append(
            await broker.publish(
                record.value,
                topic,
                key=record.key,
                headers={name: value.decode() for name, value in record.headers},
                no_confirm=True,
            )
        )
    await asyncio.gather(*pending)


async def wait_for_partitions(
    consumer: AIOKafkaConsumer,
    topics: Collection[str],
    *,
    max_delay: float = 5.0,
    warn_every: float = 30.0,
) -> None:
    """Return once the broker's metadata lists partitions of every topic in `topics` (the
    consumer must be started). A group member subscribed to a topic the broker does not list yet
    is assigned none of its partitions, and aiokafka looks again only at its next periodic
    metadata refresh (`metadata_max_age_ms`, 5 minutes): a service started just after its topics
    were created (or before them) would consume nothing meanwhile. Waits as long as it takes
    (topics are never auto-created), with a warning every `warn_every` seconds."""
    delay, warned = 0.1, -warn_every
    started = time.monotonic()
    while True:
        try:
            listed = await consumer.topics()  # a fresh metadata request: topics with partitions
            missing = sorted(set(topics) - listed)
        except KafkaError as exc:  # the broker is away: wait it out too
            missing = [f"(metadata unavailable: {exc!r})"]
        if not missing:
            return
        waited = time.monotonic() - started
        if waited - warned >= warn_every:
            log.warning("waiting for topics the broker does not list yet: %s", ", ".join(missing))
            warned = waited
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


async def wait_for_topics(settings: ServiceSettings, topics: Collection[str]) -> None:
    """`wait_for_partitions` with a consumer of its own (no group), for the topics of FastStream's
    subscribers before the broker starts them."""
    if not topics:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.service_name}-topics",
        **aiokafka_security_options(settings),
    )
    await consumer.start()
    try:
        await wait_for_partitions(consumer, topics)
    finally:
        await consumer.stop()


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
