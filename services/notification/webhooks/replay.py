"""Replay: deliver again to one subscription every public event since a moment.

For an outage longer than the retry window. The public topic is kept forever, so the events are
read again from Kafka (from the offset of the first record at or after the moment, up to the end
offsets when the replay starts), filtered by the subscription, and recorded as pending deliveries;
the dispatcher sends them in order per dossier. The `webhook-id` of a replayed event is its
original id, so a receiver that kept some of them deduplicates.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.notification.webhooks.domain import DeliveryStatus, Filters, webhook_body
from services.notification.webhooks.store import Document, WebhookStore, delivery_id
from shared.cloudevents import CloudEvent, MalformedEvent, unwrap
from shared.events import PublicDossierStatus
from shared.kafka import aiokafka_security_options
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)
BATCH = 500


async def replay(
    settings: ServiceSettings,
    store: WebhookStore,
    subscription: Document,
    since: datetime,
    job_id: str,
) -> int:
    """Record the subscription's deliveries of every public event since `since`; returns how
    many. Progress and the outcome are kept in `webhook_replays`."""
    topic = settings.topic(PublicDossierStatus.topic)
    filters = Filters.model_validate(subscription.get("filters") or {})
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id=f"{settings.service_name}-replay",
        **aiokafka_security_options(settings),  # type: ignore[arg-type]
    )
    await consumer.start()
    enqueued = 0
    try:
        partitions = [TopicPartition(topic, p) for p in await partitions_of(settings, topic)]
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
            documents = [
                document
                for tp, records in batches.items()
                for record in records
                if record.offset < remaining.get(tp, 0)
                and (document := _replayed(subscription, filters, record))
            ]
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
            await store.upsert_replayed(documents)
            enqueued += len(documents)
            await store.replays.update_one({"_id": job_id}, {"$set": {"enqueued": enqueued}})
    finally:
        await consumer.stop()
    return enqueued


async def partitions_of(settings: ServiceSettings, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        **aiokafka_security_options(settings),  # type: ignore[arg-type]
    )
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for p in described["partitions"])


def _replayed(subscription: Document, filters: Filters, record: Any) -> Document | None:
    try:
        cloud_event = CloudEvent.from_kafka(record.value, record.headers)
        event = unwrap(cloud_event, [PublicDossierStatus])
    except MalformedEvent:
        return None  # the live consumer dead-lettered it already
    assert isinstance(event, PublicDossierStatus)
    if not filters.matches(event):
        return None
    now = datetime.now(UTC)
    return {
        "_id": delivery_id(str(subscription["_id"]), cloud_event.id),
        "subscription_id": str(subscription["_id"]),
        "agency_id": subscription.get("agency_id"),
        "event_id": cloud_event.id,
        "event_type": event.action,
        "dossier_code": event.dossier_code,
        "occurred_at": event.occurred_at,
        "partition": record.partition,
        "seq": record.offset,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "replayed_at": now,
        "next_attempt_at": now,
        "body": webhook_body(cloud_event),
    }
