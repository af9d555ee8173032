"""Persist, then publish: the outbox relay against the real database and broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from shared.contracts.cloudevents import CloudEvent, unwrap, wrap
from shared.contracts.events import DossierState
from shared.runtime.kafka import create_broker
from shared.runtime.outbox import (
    LEASE_FIELD,
    LEASE_OWNER_FIELD,
    OUTBOX_FIELD,
    PENDING_FIELD,
    OutboxRelay,
    merge_updates,
    outbox_update,
)
from tests.factories import dossier_code, processed
from tests.kafka_helpers import read_records


async def test_pending_events_are_published_in_order_then_cleared(
    kafka_bootstrap: str, make_topic, mongo_db
) -> None:
    topic = await make_topic("outbox")
    cases = mongo_db["cases"]
    code = dossier_code(7)
    events = [
        wrap(processed(code, DossierState.RECEIVED, "receive"), "/t"),
        wrap(processed(code, DossierState.IN_PROCESSING, "start_processing"), "/t"),
    ]
    await cases.update_one(
        {"_id": code},
        merge_updates({"$set": {"state": 4}}, outbox_update([(topic, e) for e in events])),
        upsert=True,
    )
    broker = create_broker(kafka_bootstrap, "test-relay")
    async with broker:
        await broker.connect()
        assert await OutboxRelay(cases, broker).publish_pending() == 2
        assert await OutboxRelay(cases, broker).publish_pending() == 0  # nothing left

    records = await read_records(kafka_bootstrap, topic, 2)
    assert [CloudEvent.from_kafka(r.value, r.headers).id for r in records] == [e.id for e in events]
    second = unwrap(CloudEvent.from_kafka(records[1].value, records[1].headers))
    assert second.action == "start_processing"
    document = await cases.find_one({"_id": code})
    assert document[OUTBOX_FIELD] == [] and document[PENDING_FIELD] is False
    assert document["state"] == 4


async def test_a_crash_after_publishing_republishes_with_the_same_ids(
    kafka_bootstrap: str, make_topic, mongo_db
) -> None:
    """If the relay dies between publishing and clearing, the events go out again, same ids."""
    topic = await make_topic("outbox-crash")
    cases = mongo_db["cases"]
    event = wrap(processed(dossier_code(8), DossierState.RECEIVED, "receive"), "/t")
    await cases.insert_one({"_id": dossier_code(8), **_pending(topic, event)})

    broker = create_broker(kafka_bootstrap, "test-relay")
    async with broker:
        await broker.connect()
        relay = OutboxRelay(cases, broker)

        async def crash(documents: list[dict]) -> None:
            raise ConnectionError("relay killed before it could clear the outbox")

        relay._empty_outboxes = crash  # type: ignore[method-assign]
        assert await relay.publish_pending() == 0  # published, but not cleared
        # The lease of the dead relay expires; a new relay takes over.
        await cases.update_one({"_id": dossier_code(8)}, {"$set": {"outbox_lease_until": None}})
        assert await OutboxRelay(cases, broker).publish_pending() == 1

    records = await read_records(kafka_bootstrap, topic, 2)
    assert [CloudEvent.from_kafka(r.value, r.headers).id for r in records] == [event.id, event.id]


def _pending(topic: str, event: CloudEvent) -> dict:
    update = outbox_update([(topic, event)])
    return {OUTBOX_FIELD: update["$push"][OUTBOX_FIELD]["$each"], **update["$set"]}


async def test_an_idle_relay_backs_off_yet_publishes_a_poked_document_at_once(
    kafka_bootstrap: str, make_topic, mongo_db
) -> None:
    """Scans that find nothing space out (up to the cap); a poke still publishes at once, and a
    document left pending without a poke (a crash) is found by the next scan."""
    topic = await make_topic("outbox-idle")
    cases = mongo_db["cases"]
    poked = wrap(processed(dossier_code(9), DossierState.RECEIVED, "receive"), "/t")
    left = wrap(processed(dossier_code(10), DossierState.RECEIVED, "receive"), "/t")
    broker = create_broker(kafka_bootstrap, "test-relay")
    async with broker:
        await broker.connect()
        relay = OutboxRelay(cases, broker, poll_interval=0.02, max_poll_interval=60)
        relay.start()
        try:
            await asyncio.sleep(0.5)  # empty scans after 0.02, 0.04, 0.08, 0.16 s...
            assert relay.pacer.delay >= 0.16
            await cases.insert_one({"_id": dossier_code(9), **_pending(topic, poked)})
            relay.poke(dossier_code(9))
            records = await read_records(kafka_bootstrap, topic, 1)
            assert [CloudEvent.from_kafka(r.value, r.headers).id for r in records] == [poked.id]
            await cases.insert_one({"_id": dossier_code(10), **_pending(topic, left)})
            records = await read_records(kafka_bootstrap, topic, 2)  # the scan after the poke
            assert CloudEvent.from_kafka(records[1].value, records[1].headers).id == left.id
        finally:
            await relay.stop()


async def test_a_handed_over_document_is_published_without_being_read_again(
    kafka_bootstrap: str, make_topic, mongo_db
) -> None:
    """The writer claims the document in its own write and hands it over: the relay publishes
    and clears it with one write of its own. If the writer's process dies before its relay
    published, another relay takes the events over once the short claim has lapsed."""
    topic = await make_topic("outbox-handover", partitions=1)  # one order for all events
    cases = mongo_db["cases"]
    broker = create_broker(kafka_bootstrap, "test-relay")
    handed = wrap(processed(dossier_code(11), DossierState.RECEIVED, "receive"), "/t")
    orphan = wrap(processed(dossier_code(12), DossierState.RECEIVED, "receive"), "/t")
    async with broker:
        await broker.connect()
        relay = OutboxRelay(cases, broker, poll_interval=60)
        document = {"_id": dossier_code(11), **_pending(topic, handed), **relay.handover_claim()}
        await cases.insert_one(document)
        writes: list[str] = []
        find_one_and_update = cases.find_one_and_update

        async def counted(*args: object, **kwargs: object) -> object:
            writes.append("findAndModify")
            return await find_one_and_update(*args, **kwargs)  # type: ignore[arg-type]

        relay.collection.find_one_and_update = counted  # type: ignore[method-assign]
        relay.start()
        try:
            relay.hand_over(document)
            records = await read_records(kafka_bootstrap, topic, 1)
            assert CloudEvent.from_kafka(records[0].value, records[0].headers).id == handed.id
        finally:
            await relay.stop()
        assert writes == []  # no claim: the writer's own write claimed it
        stored = await cases.find_one({"_id": dossier_code(11)})
        assert stored[OUTBOX_FIELD] == [] and stored[PENDING_FIELD] is False

        # A writer whose process died after its write: its claim holds other relays off...
        dead_writer = OutboxRelay(cases, broker)
        await cases.insert_one(
            {"_id": dossier_code(12), **_pending(topic, orphan), **dead_writer.handover_claim()}
        )
        survivor = OutboxRelay(cases, broker)
        assert await survivor.publish_pending() == 0
        # ...until it lapses (HANDOVER_LEASE; moved into the past here rather than waited for).
        await cases.update_one(
            {"_id": dossier_code(12)},
            {"$set": {"outbox_lease_until": datetime.now(UTC) - timedelta(seconds=1)}},
        )
        assert await survivor.publish_pending() == 1
    records = await read_records(kafka_bootstrap, topic, 2)
    assert CloudEvent.from_kafka(records[1].value, records[1].headers).id == orphan.id


async def test_outboxes_are_emptied_together_and_events_appended_meanwhile_stay(
    kafka_bootstrap: str, make_topic, mongo_db
) -> None:
    """The published outboxes of a pass are emptied in one bulk write; a document that got a new
    event while its first ones were being published is left out of the bulk write: only what was
    published is pulled from it, and the new event, pending, goes out with the pass's next claim."""
    topic = await make_topic("outbox-bulk", partitions=1)
    cases = mongo_db["cases"]
    codes = [dossier_code(n) for n in range(20, 24)]
    first = {c: wrap(processed(c, DossierState.RECEIVED, "receive"), "/t") for c in codes}
    late = wrap(processed(codes[1], DossierState.IN_PROCESSING, "start_processing"), "/t")
    for code in codes:
        await cases.insert_one({"_id": code, **_pending(topic, first[code])})
    broker = create_broker(kafka_bootstrap, "test-relay")
    async with broker:
        await broker.connect()
        relay = OutboxRelay(cases, broker)
        publish = relay._publish_events
        updates: list[str] = []
        appended: list[CloudEvent] = []
        bulk_write = cases.bulk_write

        async def append_while_publishing(document: dict) -> None:
            await publish(document)
            if document["_id"] == codes[1] and not appended:  # the writer adds an event
                appended.append(late)
                await cases.update_one({"_id": codes[1]}, outbox_update([(topic, late)]))

        async def counted(operations: list, **kwargs: object) -> object:
            updates.append(f"bulk of {len(operations)}")
            return await bulk_write(operations, **kwargs)  # type: ignore[arg-type]

        relay._publish_events = append_while_publishing  # type: ignore[method-assign]
        relay.collection.bulk_write = counted  # type: ignore[method-assign]
        seen_before_pull: list[dict] = []
        pull = relay.collection.update_one

        async def watched_pull(query: dict, update: dict, **kwargs: object) -> object:
            if "$pull" in update and not seen_before_pull:
                seen_before_pull.append(await cases.find_one({"_id": codes[1]}))
            return await pull(query, update, **kwargs)  # type: ignore[arg-type]

        relay.collection.update_one = watched_pull  # type: ignore[method-assign]
        # One pass: the four first events, then (the document pending again) the late one.
        assert await relay.publish_pending() == 5
        assert updates == ["bulk of 4", "bulk of 1"]
        assert [e["id"] for e in seen_before_pull[0][OUTBOX_FIELD]] == [first[codes[1]].id, late.id]
        for code in codes:
            emptied = await cases.find_one({"_id": code})
            assert emptied[OUTBOX_FIELD] == [] and emptied[PENDING_FIELD] is False
    records = await read_records(kafka_bootstrap, topic, 5)
    ids = [CloudEvent.from_kafka(r.value, r.headers).id for r in records]
    assert sorted(ids) == sorted([*(e.id for e in first.values()), late.id])


async def test_handed_over_outboxes_are_emptied_together_and_a_late_event_goes_out_at_once(
    kafka_bootstrap: str, make_topic, mongo_db
) -> None:
    """Handed-over documents are published at once and their outboxes emptied together, when
    `batch_size` wait or `empty_delay` after the first: one bulk write for several requests. An
    event appended to one of them meanwhile (its writer's poke found the document still held)
    goes out as soon as the relay has pulled the published ones, without waiting for a scan."""
    topic = await make_topic("outbox-handed-bulk", partitions=1)
    cases = mongo_db["cases"]
    codes = [dossier_code(n) for n in (30, 31, 32)]
    first = {c: wrap(processed(c, DossierState.RECEIVED, "receive"), "/t") for c in codes}
    late = wrap(processed(codes[0], DossierState.IN_PROCESSING, "start_processing"), "/t")
    broker = create_broker(kafka_bootstrap, "test-relay")
    async with broker:
        await broker.connect()
        # No scan during the test; the third document fills the batch.
        relay = OutboxRelay(cases, broker, poll_interval=60, batch_size=3, empty_delay=60)
        bulks: list[int] = []
        bulk_write = cases.bulk_write

        async def counted(operations: list, **kwargs: object) -> object:
            bulks.append(len(operations))
            return await bulk_write(operations, **kwargs)  # type: ignore[arg-type]

        relay.collection.bulk_write = counted  # type: ignore[method-assign]
        relay.start()
        try:
            for n, code in enumerate(codes, start=1):
                document = {"_id": code, **_pending(topic, first[code]), **relay.handover_claim()}
                await cases.insert_one(document)
                relay.hand_over(document)
                await read_records(kafka_bootstrap, topic, n)  # published at once
                if n == 1:  # a later event of the first dossier, while it is held
                    await cases.update_one({"_id": code}, outbox_update([(topic, late)]))
                    relay.poke(code)
            records = await read_records(kafka_bootstrap, topic, 4)
        finally:
            await relay.stop()
    assert bulks == [3, 1]  # the three handed outboxes in one write; then the late event's
    assert [CloudEvent.from_kafka(r.value, r.headers).id for r in records] == [
        first[codes[0]].id,
        first[codes[1]].id,
        first[codes[2]].id,
        late.id,
    ]
    for code in codes:
        emptied = await cases.find_one({"_id": code})
        assert emptied[OUTBOX_FIELD] == [] and emptied[PENDING_FIELD] is False


async def test_a_scan_looks_past_documents_another_relay_holds(
    kafka_bootstrap: str, make_topic, mongo_db
) -> None:
    topic = await make_topic("outbox-leased")
    cases = mongo_db["cases"]
    broker = create_broker(kafka_bootstrap, "test-relay")
    relay = OutboxRelay(cases, broker, batch_size=10)
    held = datetime.now(UTC) + timedelta(minutes=5)
    for n in range(15):  # the first ten (in index order) are another replica's for now
        event = wrap(processed(dossier_code(n), DossierState.RECEIVED, "receive"), "/t")
        update = outbox_update([(topic, event)])
        if n < 10:
            update = merge_updates(
                update, {"$set": {LEASE_FIELD: held, LEASE_OWNER_FIELD: "replica-b"}}
            )
        await cases.update_one({"_id": dossier_code(n)}, update, upsert=True)
    async with broker:
        await broker.connect()
        assert await relay.publish_pending() == 5

    still = [d["_id"] async for d in cases.find({PENDING_FIELD: True})]
    assert sorted(still) == sorted(dossier_code(n) for n in range(10))


async def test_a_backlog_is_claimed_by_id_after_one_indexed_read_per_batch(
    kafka_bootstrap: str, make_topic, watched_db
) -> None:
    # A filter FerretDB cannot push down whole (an `$or`, an `_id` `$in`) reads every pending
    # document for each batch: a backlog then drains in quadratic time.
    db, commands = watched_db
    topic = await make_topic("outbox-backlog")
    cases = db["cases"]
    await cases.create_index(PENDING_FIELD)
    for n in range(25):
        event = wrap(processed(dossier_code(n), DossierState.RECEIVED, "receive"), "/t")
        await cases.update_one(
            {"_id": dossier_code(n)}, outbox_update([(topic, event)]), upsert=True
        )
    broker = create_broker(kafka_bootstrap, "test-relay")
    commands.sent.clear()
    commands.filters.clear()
    async with broker:
        await broker.connect()
        assert await OutboxRelay(cases, broker, batch_size=10).publish_pending() == 25

    finds = [
        f for (name, _), f in zip(commands.sent, commands.filters, strict=True) if name == "find"
    ]
    assert finds == [{PENDING_FIELD: True}] * 4  # three batches, and the read that finds none
    claims = [name for name, _ in commands.sent if name == "findAndModify"]
    assert len(claims) == 25
