"""Typed handlers on FastStream, tested fast with its in-memory `TestKafkaBroker`: one subscriber
for several topics, the handler chosen by topic and event type, and the dead-letter topic for what
no handler can take (the real-broker proof is in tests/integration/test_reliable_consumer.py)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import DossierState, DossierSubmitted, DossierWithdrawn
from shared.runtime.consumer import PermanentError, RetryPolicy, Route, subscribe
from shared.runtime.kafka import publish_cloud_event
from tests.factories import dossier_code, processed, submitted

SUBMITTED, WITHDRAWN = "dvc.dossier.submitted.v1", "dvc.dossier.withdrawn.v1"


def withdrawn(code: str) -> DossierWithdrawn:
    return DossierWithdrawn(dossier_code=code, occurred_at=submitted(code).occurred_at)


async def test_each_event_reaches_the_handler_typed_for_it_and_the_rest_is_dead_lettered() -> None:
    broker = KafkaBroker()
    seen: list[tuple[str, str, str]] = []
    dead: list[dict[str, Any]] = []

    async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        assert isinstance(event, DossierSubmitted)
        seen.append(("submitted", event.dossier_code, cloud_event.id))

    async def on_withdrawn(event: DossierWithdrawn, cloud_event: CloudEvent) -> None:
        if event.dossier_code == dossier_code(9):
            raise PermanentError("no such case")
        seen.append(("withdrawn", event.dossier_code, cloud_event.id))

    subscribe(
        broker,
        group="processing",
        routes={
            SUBMITTED: Route(DossierSubmitted, on_submitted),
            WITHDRAWN: Route(DossierWithdrawn, on_withdrawn),
        },
        policy=RetryPolicy(max_attempts=2, base_delay=0.001),
        dead_letter_topic=lambda topic: f"{topic}.processing.dlq",
    )

    @broker.subscriber("dvc.dossier.submitted.v1.processing.dlq")
    @broker.subscriber("dvc.dossier.withdrawn.v1.processing.dlq")
    async def dead_letters(body: Any, message: KafkaMessage) -> None:
        dead.append(dict(message.headers))

    first, second = wrap(submitted(dossier_code(1)), "/t"), wrap(withdrawn(dossier_code(2)), "/t")
    async with TestKafkaBroker(broker) as test_broker:
        await publish_cloud_event(test_broker, SUBMITTED, first)
        await publish_cloud_event(test_broker, WITHDRAWN, second)
        # A valid event on a topic whose handlers do not take its type.
        await publish_cloud_event(
            test_broker,
            SUBMITTED,
            wrap(processed(dossier_code(3), DossierState.RECEIVED, "receive"), "/t"),
        )
        await test_broker.publish(b"{}", SUBMITTED, headers={"ce_specversion": "1.0"})
        await publish_cloud_event(test_broker, WITHDRAWN, wrap(withdrawn(dossier_code(9)), "/t"))
        # The right headers, but data that does not fit the contract: never retried.
        headers = {k: v.decode() for k, v in wrap(submitted(), "/t").to_kafka().headers}
        await test_broker.publish(b'{"dossier_code": 42}', SUBMITTED, headers=headers)

    assert seen == [
        ("submitted", dossier_code(1), first.id),
        ("withdrawn", dossier_code(2), second.id),
    ]
    assert [(d["dlq_reason"], d["dlq_original_topic"]) for d in dead] == [
        ("malformed", SUBMITTED),
        ("malformed", SUBMITTED),
        ("permanent", WITHDRAWN),
        ("malformed", SUBMITTED),
    ]
    assert "unexpected event type" in dead[0]["dlq_error"]
    assert "missing CloudEvents headers" in dead[1]["dlq_error"]
    assert "dossier_code" in dead[3]["dlq_error"] and dead[3]["dlq_attempts"] == "0"


async def test_a_handled_event_costs_no_trip_to_a_worker_thread(monkeypatch) -> None:
    # fast-depends runs a synchronous parameter resolver (FastStream's `Context("message")`)
    # on a worker thread: two thread switches per event, a fifth of a consumer's CPU.
    trips: list[object] = []
    to_thread = anyio.to_thread.run_sync

    async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(function)
        return await to_thread(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    broker = KafkaBroker()
    seen: list[str] = []

    async def on_submitted(event: DossierSubmitted, cloud_event: CloudEvent) -> None:
        seen.append(cloud_event.id)

    subscribe(
        broker,
        group="processing",
        routes={SUBMITTED: Route(DossierSubmitted, on_submitted)},
        policy=RetryPolicy(max_attempts=2, base_delay=0.001),
        dead_letter_topic=lambda topic: f"{topic}.processing.dlq",
    )
    events = [wrap(submitted(dossier_code(n)), "/t") for n in (1, 2)]
    async with TestKafkaBroker(broker) as test_broker:
        for event in events:
            await publish_cloud_event(test_broker, SUBMITTED, event)

    assert seen == [event.id for event in events]  # each handler got its own CloudEvent
    assert trips == []
