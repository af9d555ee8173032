"""CloudEvents through the real Kafka broker."""

from __future__ import annotations

import asyncio

from shared.contracts.cloudevents import CloudEvent, unwrap, wrap
from shared.contracts.events import DossierState
from shared.runtime.kafka import create_broker, publish_cloud_event
from tests.factories import dossier_code, processed, submitted
from tests.kafka_helpers import read_records


async def test_a_published_cloud_event_is_read_back_with_its_headers_and_key(
    kafka_bootstrap: str, make_topic
) -> None:
    topic = await make_topic("roundtrip")
    event = submitted()
    cloud_event = wrap(event, source="/dvc/intake")

    broker = create_broker(kafka_bootstrap, "test-producer")
    await broker.connect()
    try:
        await publish_cloud_event(broker, topic, cloud_event)
    finally:
        await broker.stop()

    [record] = await read_records(kafka_bootstrap, topic, 1)
    assert record.key == event.dossier_code.encode()
    read = CloudEvent.from_kafka(record.value, record.headers)
    assert read.id == cloud_event.id
    assert read.type == "vn.gov.most.dvc.dossier.submitted.v1"
    assert unwrap(read) == event


async def test_events_of_one_dossier_stay_on_one_partition_in_order(
    kafka_bootstrap: str, make_topic
) -> None:
    topic = await make_topic("order", partitions=6)
    codes = [dossier_code(n) for n in range(1, 6)]
    steps = [
        (DossierState.RECEIVED, "receive"),
        (DossierState.IN_PROCESSING, "start_processing"),
        (DossierState.SUPPLEMENT_REQUESTED, "request_supplement"),
        (DossierState.IN_PROCESSING, "supplement_received"),
        (DossierState.PROCESSED, "issue_result"),
        (DossierState.RESULT_RETURNED, "return_result"),
    ]
    broker = create_broker(kafka_bootstrap, "test-producer")
    await broker.connect()
    try:
        # Interleave dossiers, so that order within each is not an accident of batching.
        for state, action in steps:
            await asyncio.gather(
                *(
                    publish_cloud_event(broker, topic, wrap(processed(code, state, action), "/t"))
                    for code in codes
                )
            )
    finally:
        await broker.stop()

    records = await read_records(kafka_bootstrap, topic, len(codes) * len(steps))
    for code in codes:
        mine = sorted((r for r in records if r.key == code.encode()), key=lambda r: r.offset)
        assert len({r.partition for r in mine}) == 1
        actions = [unwrap(CloudEvent.from_kafka(r.value, r.headers)).action for r in mine]
        assert actions == [action for _, action in steps]
    assert len({r.partition for r in records}) > 1  # the dossiers did spread over partitions
