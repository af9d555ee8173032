"""The notifier's first attempt on FerretDB: a delivery a worker will take soon is written already
claimed (no claim round trip), the others are written due, and a graceful stop gives back
the claims of those no worker took (a restart sends them at once, not after their lease)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faststream.kafka import KafkaBroker

from services.notification.citizens.adapters.store import NotificationStore
from services.notification.citizens.adapters.templates import RenderedMessage
from services.notification.citizens.domain import sms_text
from services.notification.citizens.domain.delivery import CREATED, SENDING, SENT
from services.notification.citizens.domain.ports import OutgoingMessage, SendResult
from services.notification.citizens.domain.routing import Hop
from services.notification.citizens.notifier import Notifier
from services.notification.domain.retry import RetryConfig
from shared.contracts.cloudevents import CloudEvent, unwrap
from shared.contracts.events import DossierNotified
from shared.runtime.kafka import create_broker
from shared.runtime.mongo import create_mongo_client
from shared.runtime.outbox import OUTBOX_FIELD, PENDING_FIELD, OutboxRelay
from tests.factories import dossier_code
from tests.integration.notification.conftest import eventually
from tests.kafka_helpers import read_records
from tests.mongo_helpers import counted_commands

EMAIL = "a@example.vn"


class HeldChannel:
    """An e-mail channel that records what it sends and holds each send until released."""

    provider = "test-mail"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.started: list[str] = []
        self.release = asyncio.Event()
        self.release.set()

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.started.append(message.notification_id)
        await self.release.wait()
        self.sent.append(message.notification_id)
        return SendResult("sent")

    async def close(self) -> None:
        pass


def rendered() -> RenderedMessage:
    text = "Ho so da duoc tiep nhan"
    return RenderedMessage("receipt.v1", "vi", "Tiếp nhận", text, text, sms_text.measure(text))


@asynccontextmanager
async def notifier_on(
    mongo_url: str,
    database: str,
    service: str,
    channel: HeldChannel,
    workers: int,
    *,
    notified_topic: str = "unused",
    broker: KafkaBroker | None = None,
) -> AsyncIterator[Notifier]:
    """A notifier on its own client (counted by `service`); with `broker`, its outbox relay
    publishes the notified events to `notified_topic`."""
    client = create_mongo_client(mongo_url, appname=service)
    store = NotificationStore(client[database])
    await store.ensure_indexes()
    retry = RetryConfig(workers=workers, poll_interval=0.2)
    relay = OutboxRelay(store.deliveries, broker) if broker else None
    notifier = Notifier(
        store, {"email": channel}, notified_topic=notified_topic, retry=retry, relay=relay
    )
    if relay:
        relay.start()
    try:
        yield notifier
    finally:
        if relay:
            await relay.stop()
        await client.close()


async def create(notifier: Notifier, n: int) -> None:
    assert await notifier.create_message(
        source_event_id=f"event-{n}",
        dossier_code=dossier_code(n),
        unit_code="G12",
        rendered=rendered(),
        hops=[Hop("email", EMAIL)],
    )


def delivery_writes(service: str) -> dict[str, float]:
    """The write commands one client (by its `appname`) sent to the deliveries (the poller's
    reads come and go with time)."""
    counts = counted_commands(service, lambda collection: collection == "deliveries")
    writes = ("insert", "update", "findAndModify")
    return {k.split()[0]: v for k, v in counts.items() if k.split()[0] in writes}


async def test_a_message_for_a_free_worker_is_sent_without_a_claim_of_its_own(
    mongo_url: str, mongo_db: Any, unique: str
) -> None:
    service = f"notifier-free-{unique}"
    channel = HeldChannel()
    async with notifier_on(mongo_url, mongo_db.name, service, channel, workers=2) as notifier:
        notifier.start()
        try:
            await create(notifier, 1)
            [nid] = await eventually(lambda: _async(channel.sent))
            document = await eventually(lambda: _status_is(notifier, nid, SENT))
        finally:
            await notifier.stop()
    assert document["attempts"] == 1 and document["claim"] is not None
    # Its insert (already claimed) and its outcome: no findAndModify to claim it.
    assert delivery_writes(service) == {"insert": 1, "update": 1}


async def test_a_final_outcome_and_its_event_are_one_update_published_without_reading_back(
    mongo_url: str, mongo_db: Any, unique: str, kafka_bootstrap: str, make_topic: Any
) -> None:
    topic = await make_topic("notified")
    service = f"notifier-outcome-{unique}"
    channel = HeldChannel()
    broker = create_broker(kafka_bootstrap, "test-notifier-relay")
    async with broker:
        await broker.connect()
        async with notifier_on(
            mongo_url, mongo_db.name, service, channel, 2, notified_topic=topic, broker=broker
        ) as notifier:
            notifier.start()
            try:
                await create(notifier, 1)
                [nid] = await eventually(lambda: _async(channel.sent))

                async def released() -> dict | None:
                    document = await notifier.store.delivery(nid)
                    return document if document and not document[PENDING_FIELD] else None

                document = await eventually(released)
            finally:
                await notifier.stop()
    [record] = await read_records(kafka_bootstrap, topic, 1)
    event = unwrap(CloudEvent.from_kafka(record.value, record.headers))
    assert isinstance(event, DossierNotified)
    assert (event.notification_id, event.status, event.channel) == (nid, SENT, "email")
    assert document["status"] == SENT and document[OUTBOX_FIELD] == []
    # Its insert (claimed), its outcome with the event (no findAndModify to read it back), and
    # the relay's emptying of the outbox.
    assert delivery_writes(service) == {"insert": 1, "update": 2}


async def test_while_a_round_of_workers_waits_a_message_is_written_due_and_claimed_when_taken(
    mongo_url: str, mongo_db: Any, unique: str
) -> None:
    channel = HeldChannel()
    channel.release.clear()
    service = f"notifier-busy-{unique}"
    async with notifier_on(mongo_url, mongo_db.name, service, channel, workers=1) as notifier:
        notifier.start()
        try:
            await create(notifier, 1)
            [first] = await eventually(lambda: _async(channel.started))
            await create(notifier, 2)  # the worker takes it next: written claimed for it
            await create(notifier, 3)  # a round of workers waits already: written due
            _, queued, waiting = await _deliveries(notifier)
            assert (queued["status"], queued["attempts"]) == (SENDING, 1)
            assert (waiting["status"], waiting["attempts"], waiting["claim"]) == (CREATED, 0, None)
            channel.release.set()
            await eventually(lambda: _async(len(channel.sent) == 3))
        finally:
            await notifier.stop()
    assert channel.sent == [first, queued["_id"], waiting["_id"]]
    # Only the third was claimed by the worker that took it.
    assert delivery_writes(service) == {"insert": 3, "findAndModify": 1, "update": 3}


async def test_a_graceful_stop_gives_back_claims_no_worker_took(
    mongo_url: str, mongo_db: Any, unique: str
) -> None:
    channel = HeldChannel()
    service = f"notifier-stop-{unique}"
    async with notifier_on(mongo_url, mongo_db.name, service, channel, workers=2) as notifier:
        await create(notifier, 1)  # written claimed for a worker, which never starts
        [written] = await _deliveries(notifier)
        assert written["status"] == SENDING and written["attempts"] == 1
        await notifier.stop()
        [given_back] = await _deliveries(notifier)
    assert (given_back["status"], given_back["attempts"]) == (CREATED, 0)
    assert given_back["claim"] is None and given_back["lease_until"] is None

    # The next process sends it at once (its poller finds it due), not after the 60 s lease.
    async with notifier_on(mongo_url, mongo_db.name, service, channel, workers=2) as restarted:
        restarted.start()
        try:
            await eventually(lambda: _async(channel.sent), within=5)
        finally:
            await restarted.stop()
    assert channel.sent == [written["_id"]]


async def _deliveries(notifier: Notifier) -> list[dict[str, Any]]:
    store = notifier.store
    assert isinstance(store, NotificationStore)
    return await store.deliveries.find({}).sort("created_at", 1).to_list()


async def _status_is(notifier: Notifier, nid: str, status: str) -> dict[str, Any] | None:
    document = await notifier.store.delivery(nid)
    return document if document and document["status"] == status else None


async def _async(value: Any) -> Any:
    return value
