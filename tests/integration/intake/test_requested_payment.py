"""Issue 14 B through the real broker: the officer asks 150,000 VND, processing announces it on
`dvc.dossier.processed.v1`, intake charges exactly that, keeps one open transaction per request,
and refuses a callback of another amount (recorded, no `dvc.dossier.paid.v1`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from services.intake.adapters.memory import RecordingPaymentProvider
from services.processing.adapters.store import processed_event
from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.lifecycle import Action
from services.processing.domain.workflow import Command, Rules, apply, open_case
from shared.contracts.cloudevents import wrap
from shared.contracts.events import Channel, DossierProcessed, StepAction
from shared.contracts.topics import DOSSIER_PAID_TOPIC, DOSSIER_PROCESSED_TOPIC
from shared.runtime.kafka import publish_cloud_event
from tests.factories import submitted
from tests.integration.intake.test_payment_callback import (
    callback,
    eventually,
    paid_mark,
    post,
    published_paid_events,
    settled,
)
from tests.integration.intake.test_tracking import events_of, new_dossier, wait_for_state

RULES = Rules(WorkingCalendar())


async def officer_asks(intake, code: str, amount_vnd: int) -> list[DossierProcessed]:
    """What processing announces when an officer receives the dossier and asks `amount_vnd`:
    its own domain and event mapping, published on the real topic intake consumes."""
    procedure = await intake.components.store.get_procedure("1.004940")
    event = submitted(code).model_copy(
        update={
            "procedure_code": procedure.code,
            "unit_code": procedure.unit_code,
            "channel": Channel.ONLINE,
            "occurred_at": datetime.now(UTC),
        }
    )
    case = open_case(event, procedure, RULES).case
    received = apply(case, Command(Action.RECEIVE, "officer-1", datetime.now(UTC)), RULES)
    asked = apply(
        received.case,
        Command(Action.REQUEST_PAYMENT, "officer-1", datetime.now(UTC), amount_vnd=amount_vnd),
        RULES,
    )
    events = [processed_event(received.case, step) for step in received.steps]
    events += [processed_event(asked.case, step) for step in asked.steps]
    topic = intake.topic(DOSSIER_PROCESSED_TOPIC)
    for processed in events:
        await publish_cloud_event(intake.components.context.broker, topic, wrap(processed, "/t"))
    return events


async def published_paid_events_of(kafka_bootstrap: str, intake, code: str) -> list:
    assert await published_paid_events(kafka_bootstrap, intake, code) == 1
    return await events_of(kafka_bootstrap, intake, DOSSIER_PAID_TOPIC, code)


def callbacks(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("dvc_payment_callbacks_total", labels) or 0.0


async def test_the_officers_amount_is_charged_once_per_request(
    intake, monkeypatch, kafka_bootstrap
) -> None:
    provider = RecordingPaymentProvider()
    monkeypatch.setattr(intake.components.service.payments, "provider", provider)
    code, secret = await new_dossier(intake)  # catalogue fees: 1,000,000 VND
    events = await officer_asks(intake, code, 150_000)
    assert events[-1].action is StepAction.REQUEST_PAYMENT and events[-1].amount_vnd == 150_000
    view = await wait_for_state(intake, code, secret, 6)
    assert view["fee_vnd"] == 150_000

    path, params = f"/api/v1/dossiers/{code}/payments", {"secret": secret}
    started = await intake.client.post(path, params=params)
    assert started.status_code == 201, started.text
    payment = {"dossier_code": code, **started.json()}
    assert payment["amount_vnd"] == 150_000
    assert [r.amount_vnd for r in provider.requests] == [150_000]

    # Asked again while it is open: the same transaction, nothing new at the provider.
    again = await intake.client.post(path, params=params)
    assert again.status_code == 201 and again.json() == started.json()
    assert len(provider.requests) == 1

    # A callback of another amount: refused, recorded, counted; nothing paid, nothing published.
    before = callbacks("amount_mismatch")
    wrong = callback(intake, payment, amount_vnd=1_000_000)
    refused = await post(intake, wrong)
    assert refused.status_code == 422, refused.text
    assert "150000" in refused.json()["detail"]
    assert (await post(intake, wrong)).status_code == 422  # delivered again: still refused
    recorded = await intake.components.store.get_payment(payment["transaction_id"])
    assert recorded["status"] == "pending" and "callback_pending" not in recorded
    assert [m["amount_vnd"] for m in recorded["amount_mismatches"]] == [1_000_000, 1_000_000]
    assert callbacks("amount_mismatch") == before + 2
    assert await paid_mark(intake, code) == (False, 0)
    assert await published_paid_events(kafka_bootstrap, intake, code) == 0

    # The transaction stays open: asked again, the same one; its callback of the right amount
    # settles it.
    again = await intake.client.post(path, params=params)
    assert again.json() == started.json() and len(provider.requests) == 1
    accepted = await post(intake, callback(intake, payment))
    assert accepted.status_code == 200, accepted.text
    await settled(intake, payment["transaction_id"])
    assert await paid_mark(intake, code) == (True, 1)
    [paid] = await published_paid_events_of(kafka_bootstrap, intake, code)
    assert paid.amount_vnd == 150_000

    # Paid: asking to pay the same request again is refused.
    await eventually(
        lambda: intake.client.post(path, params=params), lambda r: r.status_code == 409
    )
    assert len(provider.requests) == 1


class FailingOnce(RecordingPaymentProvider):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def create_payment(self, request):  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise ConnectionError("provider down")
        return await super().create_payment(request)


async def test_concurrent_starts_make_one_transaction_and_a_provider_failure_a_new_attempt(
    intake, monkeypatch
) -> None:
    provider = FailingOnce()
    monkeypatch.setattr(intake.components.service.payments, "provider", provider)
    code, secret = await new_dossier(intake)
    await officer_asks(intake, code, 150_000)
    await wait_for_state(intake, code, secret, 6)
    path, params = f"/api/v1/dossiers/{code}/payments", {"secret": secret}

    down = await intake.client.post(path, params=params)
    assert down.status_code == 503, down.text
    [abandoned] = [p async for p in intake.components.store.payments.find({"dossier_code": code})]
    assert abandoned["status"] == "provider_unavailable" and abandoned["_id"].endswith("-1")

    answers = await asyncio.gather(*(intake.client.post(path, params=params) for _ in range(4)))
    created = [a.json() for a in answers if a.status_code == 201]
    assert created and all(a.status_code in (201, 409) for a in answers)
    assert {c["transaction_id"] for c in created} == {abandoned["_id"][:-2] + "-2"}
    assert {c["amount_vnd"] for c in created} == {150_000}
    assert len(provider.requests) == 1
