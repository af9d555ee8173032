"""The national-portal sync end to end: events on the real broker, the facts and sync state in
FerretDB, and the portal simulator served by uvicorn on a real local port (with fault injection)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from services.notification.main import build_portal_sync
from services.notification.portal.__main__ import run as portal_command
from services.notification.portal.adapters.client import PortalClient
from services.notification.portal.adapters.store import SYNC_FIELDS
from services.notification.portal.domain.messages import DossierMessage
from services.notification.portal.domain.sync_status import FAILED, PENDING, SYNCED
from services.notification.portal.handlers import portal_handlers
from services.notification.portal.service import PortalSync
from services.notification.portal.settings import PortalCommandSettings
from shared.contracts.cloudevents import CloudEvent, wrap
from shared.contracts.events import (
    Applicant,
    ApplicantKind,
    Channel,
    Contact,
    DocumentRef,
    DossierPaid,
    DossierProcessed,
    DossierState,
    DossierSubmitted,
    DossierSupplemented,
    DossierWithdrawn,
)
from shared.runtime.consumer import RetryPolicy, Route, subscribe
from shared.runtime.kafka import create_broker
from shared.runtime.mongo import create_mongo_client
from tests.integration.notification.conftest import eventually, publish
from tests.integration.notification.servers import PASSWORD, USER, PortalServer
from tests.mongo_helpers import counted_commands

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
MODELS = (DossierSubmitted, DossierSupplemented, DossierWithdrawn, DossierPaid, DossierProcessed)


@pytest.fixture
def portal() -> Iterator[PortalServer]:
    server = PortalServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(mongo_url: str, mongo_db: Any, portal: PortalServer) -> PortalCommandSettings:
    return PortalCommandSettings(
        environment="test",
        mongo_url=mongo_url,
        mongo_database=mongo_db.name,
        portal_enabled=True,
        portal_url=portal.url,
        portal_username=USER,
        portal_password=PASSWORD,
        portal_timeout_seconds=0.5,
        portal_max_attempts=3,
        portal_backoff_seconds=0.05,
        portal_backoff_max_seconds=0.2,
        portal_lease_seconds=10,
        portal_poll_seconds=0.05,
        portal_metrics_seconds=60,
    )


@dataclass
class Pipeline:
    sync: PortalSync
    topics: dict[type, str]
    producer: AIOKafkaProducer

    async def send(self, event: Any, event_id: str | None = None) -> CloudEvent:
        cloud_event = wrap(event, "/dvc/test", event_id=event_id)
        await self.resend(cloud_event)
        return cloud_event

    async def resend(self, cloud_event: CloudEvent) -> None:
        model = next(m for m in MODELS if m.event_type == cloud_event.type)
        await publish(self.producer, self.topics[model], cloud_event)

    async def status(self, code: str) -> str:
        state = await self.sync.store.sync_state(code)
        return state["status"] if state else ""

    async def until_status(self, code: str, status: str, within: float = 20) -> dict:
        async def reached() -> dict | None:
            state = await self.sync.store.sync_state(code)
            return state if state and state["status"] == status else None

        return await eventually(reached, within=within)


@asynccontextmanager
async def pipeline(
    settings: PortalCommandSettings,
    mongo_db: Any,
    kafka_bootstrap: str,
    make_topic: Any,
    producer: AIOKafkaProducer,
    unique: str,
) -> AsyncIterator[Pipeline]:
    """PortalSync consuming its five topics through the reliable consumer, worker running."""
    topics = {model: await make_topic(model.__name__.lower()) for model in MODELS}
    dead_letters = await make_topic("portal-dlq", partitions=1)
    sync = build_portal_sync(mongo_db, settings)
    handlers = portal_handlers(sync)
    broker = create_broker(kafka_bootstrap, "test-portal")
    subscribe(
        broker,
        group=f"notification-portal-{unique}",
        routes={topics[m]: Route(m, handlers[m]) for m in MODELS},
        policy=RetryPolicy(max_attempts=3, base_delay=0.05),
        dead_letter_topic=lambda _: dead_letters,
    )
    await broker.start()
    try:
        async with sync.lifecycle():
            yield Pipeline(sync, topics, producer)
    finally:
        await broker.stop()


def code_of(n: int) -> str:
    return f"000.00.21.G12-261129-{n:04d}"


def submitted(code: str, at: datetime) -> DossierSubmitted:
    return DossierSubmitted(
        dossier_code=code,
        occurred_at=at,
        procedure_code="1.004473",
        unit_code="G12",
        level=4,
        channel=Channel.ONLINE,
        applicant=Applicant(
            kind=ApplicantKind.PERSON, name="Trần Thị B", identifier="001303004567"
        ),
        contact=Contact(email="b@example.vn", phone="0987654321"),
        documents=[
            DocumentRef(
                document_type="to_khai",
                file_name="to_khai.pdf",
                content_type="application/pdf",
                size_bytes=2048,
                storage_id="att-1",
            )
        ],
        fee_vnd=500_000,
    )


def processed(
    code: str,
    action: str,
    state: DossierState,
    previous: DossierState | None,
    at: datetime,
    **extra: Any,
) -> DossierProcessed:
    return DossierProcessed(
        dossier_code=code,
        occurred_at=at,
        procedure_code="1.004473",
        unit_code="G12",
        action=action,
        state=state,
        previous_state=previous,
        actor=extra.pop("actor", "officer-7"),
        **extra,
    )


def base_time() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def share() -> float | None:
    return REGISTRY.get_sample_value("dvc_portal_sync_share")


def dossiers_gauge(status: str) -> float | None:
    return REGISTRY.get_sample_value("dvc_portal_sync_dossiers", {"status": status})


async def test_a_dossier_and_its_steps_reach_the_portal_in_order_exactly_once(
    settings: PortalCommandSettings,
    mongo_db: Any,
    kafka_bootstrap: str,
    make_topic: Any,
    producer: AIOKafkaProducer,
    unique: str,
    portal: PortalServer,
) -> None:
    code, t0 = code_of(1), base_time()
    due = t0 + timedelta(days=5)
    async with pipeline(settings, mongo_db, kafka_bootstrap, make_topic, producer, unique) as p:
        submit = await p.send(submitted(code, t0))
        receive = await p.send(
            processed(
                code,
                "receive",
                DossierState.RECEIVED,
                DossierState.SUBMITTED,
                t0 + timedelta(minutes=5),
                due_at=due,
            )
        )
        await p.send(
            processed(
                code,
                "start_processing",
                DossierState.IN_PROCESSING,
                DossierState.RECEIVED,
                t0 + timedelta(minutes=5),
                due_at=due,
                actor="system",
            )
        )
        warning = processed(
            code,
            "deadline_warning_50",
            DossierState.IN_PROCESSING,
            DossierState.IN_PROCESSING,
            t0 + timedelta(minutes=30),
        )
        await p.send(warning)
        await p.send(
            DossierPaid(
                dossier_code=code,
                occurred_at=t0 + timedelta(minutes=40),
                transaction_id="TX-9",
                amount_vnd=500_000,
                provider="payment-platform",
            )
        )

        async def portal_has_it() -> dict | None:
            dossier = portal.state.dossiers.get(code)
            steps = portal.state.steps.get(code, {})
            paid = dossier and dossier.get("DanhSachLePhi", [{}])[0].get("DaThanhToan") == 1
            return dossier if paid and len(steps) == 3 else None

        dossier = await eventually(portal_has_it)
        await p.until_status(code, SYNCED)
        assert dossier["TrangThaiHoSo"] == 4 and dossier["KenhThucHien"] == 2
        assert dossier["NgayHenTra"] == due.astimezone(HANOI).strftime("%Y%m%d%H%M%S")
        assert "0987654321" not in str(dossier) and "001303004567" not in str(dossier)
        steps = list(portal.state.steps[code].values())
        assert [s["MaBuoc"] for s in steps][:2] == [submit.id, receive.id]
        assert [s["TrangThai"] for s in steps] == [1, 2, 4]  # no internal warning
        # Every payload passed the simulator's checks, and the dossier came before any step.
        sync_requests = [r for r in portal.requests() if r[0] != "login"]
        assert all(status == 200 for _, status in sync_requests)
        assert sync_requests[0] == ("dossier", 200)

        # A redelivered event (same id) adds nothing; a new step goes after a new dossier state.
        before = len(portal.requests("step"))
        await p.resend(receive)
        request = processed(
            code,
            "request_supplement",
            DossierState.SUPPLEMENT_REQUESTED,
            DossierState.IN_PROCESSING,
            t0 + timedelta(minutes=50),
            note="Thiếu bản sao",
            requested_documents=["Bản sao Giấy phép"],
        )
        # The portal dropped its sessions meanwhile (e.g. it restarted): the sync logs in again.
        portal.admin("/_admin/sessions/expire")
        await p.send(request)

        async def supplement_step() -> bool:
            return len(portal.state.steps.get(code, {})) == 4

        await eventually(supplement_step)
        await p.until_status(code, SYNCED)
        assert portal.state.dossiers[code]["TrangThaiHoSo"] == 5
        assert portal.state.dossiers[code]["DanhSachHoSoBoSung"][0]["GiayToYeuCau"] == [
            "Bản sao Giấy phép"
        ]
        assert len(portal.requests("step")) - before == 1  # only the new step, once
        assert ("dossier", 401) in portal.requests() and portal.state.logins == 2
        record = await mongo_db["portal_dossiers"].find_one({"_id": code})
        assert (
            len(record["steps"]) == 4
        )  # submit, receive, start, request: no duplicate, no warning

        counts = await p.sync.refresh_metrics()
        assert counts[SYNCED] == 1 and share() == 1.0


async def test_a_portal_that_is_down_gets_everything_once_it_is_back(
    settings: PortalCommandSettings,
    mongo_db: Any,
    kafka_bootstrap: str,
    make_topic: Any,
    producer: AIOKafkaProducer,
    unique: str,
    portal: PortalServer,
) -> None:
    settings = settings.model_copy(update={"portal_max_attempts": 1000})
    code, t0 = code_of(2), base_time()
    portal.admin("/_admin/faults", {"fail_next": 10_000, "status": 503})
    async with pipeline(settings, mongo_db, kafka_bootstrap, make_topic, producer, unique) as p:
        await p.send(submitted(code, t0))
        await p.send(
            processed(
                code,
                "receive",
                DossierState.RECEIVED,
                DossierState.SUBMITTED,
                t0 + timedelta(minutes=1),
            )
        )

        async def retried() -> dict | None:
            state = await p.sync.store.sync_state(code)
            return state if state and state.get("attempts", 0) >= 3 else None

        state = await eventually(retried)
        assert state["status"] == PENDING and "HTTP 503" in state["last_error"]
        await p.sync.refresh_metrics()
        assert dossiers_gauge(PENDING) == 1 and share() == 0.0

        portal.admin("/_admin/faults", {"fail_next": 0})
        await p.until_status(code, SYNCED)
        assert portal.state.dossiers[code]["TrangThaiHoSo"] == 2
        assert len(portal.state.steps[code]) == 2
        assert portal.requests("login")[0] == ("login", 503)  # the portal really was down
        await p.sync.refresh_metrics()
        assert dossiers_gauge(SYNCED) == 1 and share() == 1.0


async def test_a_hanging_portal_times_out_and_the_retry_changes_nothing_twice(
    settings: PortalCommandSettings,
    mongo_db: Any,
    kafka_bootstrap: str,
    make_topic: Any,
    producer: AIOKafkaProducer,
    unique: str,
    portal: PortalServer,
) -> None:
    code = code_of(3)
    # The dossier call hangs past the 0.5 s time-out; the portal still stores it, late.
    portal.admin("/_admin/faults", {"hang_next": 1, "hang_seconds": 1.5, "on": ["dossier"]})
    async with pipeline(settings, mongo_db, kafka_bootstrap, make_topic, producer, unique) as p:
        await p.send(submitted(code, base_time()))
        state = await p.until_status(code, SYNCED)
        assert state["attempts"] == 0 and state["last_error"] is None
        assert len(portal.state.steps[code]) == 1

        async def hung_call_landed() -> list:
            return portal.requests("dossier") if len(portal.requests("dossier")) == 2 else []

        # The retry and the late hung call both landed: one dossier, the same content.
        assert await eventually(hung_call_landed) == [("dossier", 200), ("dossier", 200)]
        assert list(portal.state.dossiers) == [code]


async def test_steps_that_overtake_their_submission_wait_for_it(
    settings: PortalCommandSettings,
    mongo_db: Any,
    kafka_bootstrap: str,
    make_topic: Any,
    producer: AIOKafkaProducer,
    unique: str,
    portal: PortalServer,
) -> None:
    """The submitted and processed topics are separate, so a step can arrive first."""
    code, t0 = code_of(6), base_time()
    async with pipeline(settings, mongo_db, kafka_bootstrap, make_topic, producer, unique) as p:
        receive = await p.send(
            processed(
                code,
                "receive",
                DossierState.RECEIVED,
                DossierState.SUBMITTED,
                t0 + timedelta(minutes=1),
            )
        )
        await p.until_status(code, "waiting")
        assert code not in portal.state.dossiers  # nothing can be sent without the dossier
        submit = await p.send(submitted(code, t0))
        await p.until_status(code, SYNCED)
        steps = list(portal.state.steps[code])
        assert steps == [submit.id, receive.id]  # in time order, not in arrival order
        assert portal.state.dossiers[code]["TrangThaiHoSo"] == 2


async def test_a_refused_dossier_fails_and_resync_sends_it_again_idempotently(
    capsys: pytest.CaptureFixture[str],
    settings: PortalCommandSettings,
    mongo_db: Any,
    kafka_bootstrap: str,
    make_topic: Any,
    producer: AIOKafkaProducer,
    unique: str,
    portal: PortalServer,
) -> None:
    refused, exhausted, t0 = code_of(4), code_of(5), base_time()
    async with pipeline(settings, mongo_db, kafka_bootstrap, make_topic, producer, unique) as p:
        # The portal refuses the first dossier (its procedure is missing from the national
        # catalogue): failed at once, with the portal's reason, nothing retried.
        portal.admin("/_admin/procedures", {"unknown": ["1.004473"]})
        await p.send(submitted(refused, t0))
        state = await p.until_status(refused, FAILED)
        assert state["attempts"] == 1 and "HTTP 400" in state["last_error"]
        assert "không có trong CSDL quốc gia" in state["last_error"]
        assert portal.requests("dossier") == [("dossier", 400)]
        portal.admin("/_admin/procedures", {"unknown": []})  # the catalogue is fixed

        # Down for longer than the retry budget (3 attempts): failed, with the last error.
        portal.admin("/_admin/faults", {"fail_next": 3, "status": 502})
        await p.send(submitted(exhausted, t0))
        state = await p.until_status(exhausted, FAILED)
        assert state["attempts"] == 3 and "HTTP 502" in state["last_error"]
        assert refused not in portal.state.dossiers and exhausted not in portal.state.dossiers
        await p.sync.refresh_metrics()
        assert dossiers_gauge(FAILED) == 2 and share() == 0.0

        # Nothing was lost: the portal is fine again and the operator resyncs the failed ones.
        assert await portal_command(["resync", "--failed"], settings) == 0
        assert await p.status(refused) == SYNCED and await p.status(exhausted) == SYNCED
        assert {refused, exhausted} <= set(portal.state.dossiers)

        # Resync twice: the portal's state is unchanged, though everything was sent again.
        snapshot = copy.deepcopy(portal.state.snapshot())
        sent = len(portal.requests("dossier") + portal.requests("step"))
        for _ in range(2):
            assert await portal_command(["resync", "--dossier", refused], settings) == 0
        assert portal.state.snapshot() == snapshot
        resent = portal.requests("dossier") + portal.requests("step")
        assert len(resent) - sent == 4  # (the dossier + its one step) x 2
        assert await portal_command(["resync", "--dossier", code_of(99)], settings) == 1
        assert capsys.readouterr().out.splitlines()[-1] == f"{code_of(99)}\tunknown"
        await p.sync.refresh_metrics()
        assert share() == 1.0
        assert await portal_command(["status"], settings) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["dossiers"][SYNCED] == 2 and status["synced_share"] == 1.0


class GatedPortalClient(PortalClient):
    """A real client whose first dossier message waits, sent, until the test opens the gate."""

    def __init__(self, settings: PortalCommandSettings) -> None:
        super().__init__(
            base_url=settings.portal_url,
            username=settings.portal_username,
            password=settings.portal_password.get_secret_value(),
            timeout=settings.portal_timeout_seconds,
        )
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def send_dossier(self, message: DossierMessage) -> None:
        if not self.gate.is_set():
            self.entered.set()
            await self.gate.wait()
        await super().send_dossier(message)


def receive(code: str, at: datetime) -> DossierProcessed:
    return processed(code, "receive", DossierState.RECEIVED, DossierState.SUBMITTED, at)


async def test_an_event_that_comes_in_during_a_pass_is_sent_by_the_next_one(
    settings: PortalCommandSettings, mongo_db: Any, portal: PortalServer
) -> None:
    code, t0 = code_of(8), base_time()
    client = GatedPortalClient(settings)
    sync = build_portal_sync(mongo_db, settings, client=client)
    try:
        await sync.dossier_submitted(submitted(code, t0), "submit-8")
        first_pass = asyncio.create_task(sync.worker.process(code))
        await asyncio.wait_for(client.entered.wait(), 10)
        await sync.dossier_processed(receive(code, t0 + timedelta(minutes=1)), "receive-8")
        client.gate.set()
        # The pass read the record before the step: its settle finds `seq` moved and goes again.
        assert await first_pass == PENDING
        state = await sync.store.sync_state(code)
        assert state is not None
        assert state["synced_seq"] == 1 and state["steps_sent"] == ["submit-8"]
        assert state["claim"] is None and state["seq"] == 2
        assert await sync.worker.process(code) == SYNCED
        assert list(portal.state.steps[code]) == ["submit-8", "receive-8"]
        assert portal.state.dossiers[code]["TrangThaiHoSo"] == 2
        assert portal.requests("step") == [("step", 200)] * 2  # each step once
    finally:
        await sync.close()


async def test_a_dossier_is_taken_over_when_its_workers_lease_runs_out(
    settings: PortalCommandSettings, mongo_db: Any, portal: PortalServer
) -> None:
    settings = settings.model_copy(update={"portal_lease_seconds": 0.5})
    code = code_of(9)
    stuck_client = GatedPortalClient(settings)
    stuck = build_portal_sync(mongo_db, settings, client=stuck_client)
    other = build_portal_sync(mongo_db, settings)
    try:
        await stuck.dossier_submitted(submitted(code, base_time()), "submit-9")
        stuck_pass = asyncio.create_task(stuck.worker.process(code))
        await asyncio.wait_for(stuck_client.entered.wait(), 10)
        assert await other.worker.process(code) is None  # leased
        await asyncio.sleep(0.6)
        assert await other.worker.process(code) == SYNCED  # the lease ran out: taken over
        stuck_client.gate.set()
        # The stuck worker's message lands late (the same content); it sends nothing more and
        # writes nothing: the dossier is someone else's.
        assert await stuck_pass is None
        assert portal.requests("dossier") == [("dossier", 200)] * 2
        assert portal.requests("step") == [("step", 200)]
        state = await other.store.sync_state(code)
        assert state is not None and state["status"] == SYNCED and state["claim"] is None
    finally:
        await stuck.close()
        await other.close()


async def test_the_former_sync_collection_is_merged_into_the_dossiers_at_start(
    settings: PortalCommandSettings, mongo_db: Any, portal: PortalServer
) -> None:
    synced, failed, unmarked, touched = (code_of(n) for n in (11, 12, 13, 14))
    t0 = base_time()
    former = build_portal_sync(mongo_db, settings)  # the former version's process, gone
    for code in (synced, failed, unmarked, touched):
        await former.dossier_submitted(submitted(code, t0), f"submit-{code}")
    await former.close()
    sync = build_portal_sync(mongo_db, settings)
    try:
        # The former layout: the sync state in `portal_sync`, none in the dossiers' documents
        # (and none at all for `unmarked`: its handler died between the two writes).
        dossiers = mongo_db["portal_dossiers"]
        await dossiers.update_many({}, {"$unset": {field: "" for field in SYNC_FIELDS}})
        legacy = {"attempts": 0, "lease_until": None, "claim": None, "created_at": t0}
        await mongo_db["portal_sync"].insert_many(
            [
                {
                    **legacy,
                    "_id": code,
                    "status": SYNCED,
                    "synced_seq": 1,
                    "steps_sent": [f"submit-{code}"],
                    "synced_at": t0,
                }
                for code in (synced, touched)
            ]
            + [
                {
                    **legacy,
                    "_id": failed,
                    "status": FAILED,
                    "synced_seq": 0,
                    "steps_sent": [],
                    "attempts": 1,
                    "last_error": "HTTP 400",
                }
            ]
        )
        # A new replica's handler reached `touched` before the migration: it stays pending.
        await sync.dossier_processed(receive(touched, t0 + timedelta(minutes=1)), "receive-14")

        async with sync.lifecycle():
            assert "portal_sync" not in await mongo_db.list_collection_names()
            state = await sync.store.sync_state(synced)
            assert state is not None and state["status"] == SYNCED
            assert state["synced_seq"] == 1 and state["steps_sent"] == [f"submit-{synced}"]
            state = await sync.store.sync_state(failed)
            assert state is not None and state["status"] == FAILED
            assert state["last_error"] == "HTTP 400" and state["attempts"] == 1
            for code in (unmarked, touched):
                await eventually(lambda code=code: status_is(sync, code, SYNCED))
        assert set(portal.state.dossiers) == {unmarked, touched}
        assert list(portal.state.steps[touched]) == [f"submit-{touched}", "receive-14"]
        record = await dossiers.find_one({"_id": synced})
        assert record is not None and record["submission"]["unit_code"] == "G12"
        assert record["seq"] == 1 and record["applied_event_ids"] == [f"submit-{synced}"]
        assert (await sync.counts())[SYNCED] == 3
        # Once done, nothing to do.
        assert await sync.store.migrate_sync_collection(datetime.now(UTC)) == 0
    finally:
        await sync.close()


async def status_is(sync: PortalSync, code: str, status: str) -> bool:
    state = await sync.store.sync_state(code)
    return state is not None and state["status"] == status


def portal_commands(service: str) -> dict[str, float]:
    """The commands of one client (by its `appname`) on the portal's collections."""
    return counted_commands(service, lambda collection: collection.startswith("portal_"))


def not_empty(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if value != []}


async def test_a_submission_inserts_the_document_its_upsert_would_write(
    settings: PortalCommandSettings, mongo_url: str, mongo_db: Any
) -> None:
    """What the worker starts from and what is stored are the same whether a dossier's first
    event inserts its document or upserts it; a second try of the insert changes nothing."""
    client = create_mongo_client(mongo_url)
    store = build_portal_sync(client[mongo_db.name], settings).store
    now, lease = datetime.now(UTC), timedelta(seconds=30)  # microseconds: stored to the ms
    update = {
        "$set": {"submission": {"unit_code": "G12", "at": now}},
        "$push": {"steps": {"id": "submit", "at": now}},
    }
    try:
        await store.ensure_indexes()
        inserted = await store.record_and_claim(
            "inserted", "e-1", update, now, lease, "c", first=True
        )
        upserted = await store.record_and_claim("upserted", "e-1", update, now, lease, "c")
        assert inserted is not None and upserted is not None
        assert inserted.pop("_id") == "inserted" and upserted.pop("_id") == "upserted"
        # FerretDB 1.24's upsert drops an empty array given by `$setOnInsert` (`steps_sent`;
        # MongoDB keeps it, as the insert does); the worker reads a missing one as empty.
        assert not_empty(inserted) == not_empty(upserted)
        stored = {d.pop("_id"): d async for d in mongo_db["portal_dossiers"].find({})}
        assert stored == {"inserted": inserted, "upserted": upserted}
        # Again (a redelivery): the insert meets the document, the findAndModify matches nothing.
        again = await store.record_and_claim("inserted", "e-1", update, now, lease, "c", first=True)
        assert again is None
    finally:
        await client.close()


async def test_one_event_costs_two_database_commands(
    settings: PortalCommandSettings,
    mongo_url: str,
    mongo_db: Any,
    unique: str,
    portal: PortalServer,
) -> None:
    """The handler's write, which also claims the dossier and reads its facts back, and the
    worker's settle. While another worker holds the dossier, an event is recorded without the
    claim and sent by the pass after that worker's."""
    service = f"portal-count-{unique}"
    client = create_mongo_client(mongo_url, appname=service)
    sync = build_portal_sync(client[mongo_db.name], settings)
    try:
        await sync.store.ensure_indexes()
        code = code_of(7)
        before = portal_commands(service)
        await sync.dossier_submitted(submitted(code, base_time()), "submit-7")
        assert await sync.worker.process(code) == SYNCED
        spent = {k: v - before.get(k, 0) for k, v in portal_commands(service).items()}
        spent = {k: v for k, v in spent.items() if v}
        # The submission inserts its dossier claimed; the worker's pass settles it.
        assert spent == {"insert portal_dossiers": 1, "update portal_dossiers": 1}
        assert set(portal.state.dossiers) == {code}

        dossiers = mongo_db["portal_dossiers"]
        held = {"claim": "another-worker", "lease_until": datetime.now(UTC) + timedelta(minutes=1)}
        await dossiers.update_one({"_id": code}, {"$set": held})
        await sync.dossier_processed(receive(code, base_time() + timedelta(minutes=1)), "r-7")
        assert await sync.worker.process(code) is None  # still that worker's
        assert "r-7" not in portal.state.steps.get(code, {})
        await dossiers.update_one({"_id": code}, {"$set": {"claim": None, "lease_until": None}})
        assert await sync.worker.process(code) == SYNCED
        assert list(portal.state.steps[code]) == ["submit-7", "r-7"]
    finally:
        await sync.close()
        await client.close()
