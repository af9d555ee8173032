"""Every query the services repeat (per event, per request, per poll) is served by an index.

The stores run against the real FerretDB/PostgreSQL through a client with a command listener,
their methods instrumented so that each command is labelled with the method that sent it. Every
filter recorded — `find`, `update`, `findAndModify`, `delete`, `count`, `distinct` and an
aggregation's leading `$match` — is then explained on FerretDB (as the `find` of the same filter,
sort and limit: FerretDB explains only `find` and `aggregate`, and the other commands push their
filter down through the same code) and must

- be pushed down to PostgreSQL (`filterPushdown`), with
- an equality on `_id` or on the first key of an index its store declares in `INDEXES` among the
  pushed-down conditions — so MongoDB serves it from that btree, and PostgreSQL from its GIN twin
  (`devstack/postgres/gin_mirror.sql`), instead of reading the whole collection.

The list of queries is the store code itself: every public method of each store must be exercised
below (or be listed in `NOT_EXERCISED` with a reason), so a new query cannot escape. Start-up and
operator methods (`ONE_OFF`) are exercised but not checked; methods that by design answer a whole
small collection (`WHOLE_READS`) may send only empty filters.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from devstack.config import load_config
from services.intake.adapters import store as intake_store
from services.intake.adapters.shipped_catalogue import load_catalogue
from services.intake.adapters.store import (
    IdempotencyClaim,
    IdempotencyConflict,
    IntakeStore,
    NewAttachment,
)
from services.intake.domain.dossier import Dossier, InboxMessage, Rating, processing_step
from services.notification.citizens.adapters import store as notification_store
from services.notification.citizens.adapters.store import NotificationStore
from services.notification.portal.adapters import store as portal_store
from services.notification.portal.adapters.store import PortalStore
from services.notification.webhooks.adapters import store as webhook_store
from services.notification.webhooks.adapters.replay_jobs import ReplayJobStore
from services.notification.webhooks.adapters.store import WebhookStore, delivery_id
from services.notification.webhooks.domain.subscriptions import DeliveryStatus
from services.processing.adapters import staff as processing_staff
from services.processing.adapters import store as processing_store
from services.processing.adapters.staff import StaffStore
from services.processing.adapters.store import CaseStore
from services.processing.domain.calendar import CalendarChange
from services.processing.domain.lifecycle import Action
from services.processing.domain.workflow import Command, apply, open_case
from services.processing.service.cases import ProcessingService
from services.processing.settings import ProcessingSettings
from services.reporting.adapters import store as reporting_store
from services.reporting.adapters.store import (
    POINTER_COLLECTION,
    POINTER_ID,
    ReportingStore,
    read_active_prefix,
)
from services.reporting.domain.facts import facts_update
from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierState
from shared.runtime.mongo import IndexDeclaration, create_mongo_client, ensure_indexes
from shared.runtime.outbox import OutboxRelay, outbox_update
from tests.factories import dossier_code, processed, submitted
from tests.intake_samples import stored_dossier
from tests.integration.processing.test_deadline_scanner import PROCEDURE

pytestmark = pytest.mark.skipif(
    load_config("test").mongo_backend != "postgresql",
    reason="FerretDB on SQLite pushes down nothing but `_id`: the test profile runs on SQLite",
)

# The stores' own declarations, per service database.
DECLARED: dict[str, IndexDeclaration] = {
    "intake": intake_store.INDEXES,
    "processing": {**processing_store.INDEXES, **processing_staff.INDEXES},
    "notification": {
        **notification_store.INDEXES,
        **webhook_store.INDEXES,
        **portal_store.INDEXES,
    },
    "reporting": reporting_store.INDEXES,
}

# Run at start-up or from an operator's command line: exercised, not checked.
ONE_OFF = {
    "IntakeStore.ensure_indexes": "start-up",
    "IntakeStore.save_units": "start-up seeding of the units",
    "IntakeStore.save_procedures": "start-up seeding, an administrator's change: every checksum",
    "IntakeStore.flag_unpublished": "the catalogue publisher's first pass compares everything once",
    "CaseStore.ensure_indexes": "start-up, with the one-off `watched` backfill",
    "NotificationStore.ensure_indexes": "start-up",
    "WebhookStore.ensure_indexes": "start-up",
    "PortalStore.ensure_indexes": "start-up",
    "PortalStore.migrate_sync_collection": "start-up, once: merges the former portal_sync",
    "ReportingStore.ensure_indexes": "start-up and rebuild",
    "StaffStore.ensure_indexes": "start-up",
}
# Answer a whole small collection by design (no index can make reading all of it cheaper): they
# may send empty filters only.
WHOLE_READS = {
    "IntakeStore.list_units": "GET /units answers every unit (15)",
    "IntakeStore.all_procedures": "the catalogue roll-up is computed over all 316 procedures",
    "CaseStore.calendar_changes_list": "the calendar is rebuilt from every announced change",
    "ReportingStore.all_counters": "the all-time gauges sum every counter row",
    "ReportingStore.all_procedures": "the report's and the gauges' catalogue roll-up",
}
NOT_EXERCISED = {
    "OutboxRelay.run": "the loop around publish_documents and publish_pending",
    "OutboxRelay.stop": "publish_pending at shutdown",
}

FILTERED_COMMANDS = ("find", "update", "delete", "findAndModify", "count", "distinct", "aggregate")
# FerretDB's SQL for a pushed-down equality: `(<table>._jsonb -> 'field'::text) @> '<value>'`,
# and `= '<value>'` for `_id` (devstack's FerretDB patch 0005).
PUSHED_EQUALITY = re.compile(r"_jsonb -> '([^']+)'::text\) (?:@>|=) ")
PUSHABLE = (str, bool, int, float, datetime, ObjectId)
MAX_SAFE_INTEGER = 2**53

_label: ContextVar[str | None] = ContextVar("store_method", default=None)
_allowed_scan: ContextVar[str | None] = ContextVar("allowed_scan", default=None)


@dataclass(frozen=True)
class Query:
    """One filter a store sent, as FerretDB would push it down."""

    label: str | None
    allowed_scan: str | None
    service: str
    collection: str
    filter: Mapping[str, Any]
    sort: Mapping[str, Any] | None = None
    limit: int | None = None
    pipeline: Sequence[Mapping[str, Any]] | None = None

    def __str__(self) -> str:
        shape = {"filter": self.filter, "sort": self.sort, "limit": self.limit}
        return f"{self.label} on {self.service}.{self.collection}: {shape}"


@dataclass
class Recorder(monitoring.CommandListener):
    prefix: str
    queries: list[Query] = field(default_factory=list)
    called: set[str] = field(default_factory=set)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in FILTERED_COMMANDS:
            return
        if not event.database_name.startswith(self.prefix):
            return
        service = event.database_name.removeprefix(self.prefix)
        self.queries.extend(
            _queries(service, event.command_name, copy.deepcopy(dict(event.command)))
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def instrument(self, target: Any) -> Any:
        """Label every command `target`'s public methods send with `Class.method`."""
        for name in public_coroutines(type(target)):
            label = f"{type(target).__name__}.{name}"
            setattr(target, name, self._labelled(label, getattr(target, name)))
        return target

    def _labelled(
        self, label: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.called.add(label)
            token = _label.set(label)
            try:
                return await method(*args, **kwargs)
            finally:
                _label.reset(token)

        return call

    @contextlib.contextmanager
    def as_call(self, label: str) -> Iterator[None]:
        """Label a module-level function's commands."""
        self.called.add(label)
        token = _label.set(label)
        try:
            yield
        finally:
            _label.reset(token)


@contextlib.contextmanager
def allowed_scan(reason: str) -> Iterator[None]:
    """A call whose query may read the whole collection (say why)."""
    token = _allowed_scan.set(reason)
    try:
        yield
    finally:
        _allowed_scan.reset(token)


def _queries(service: str, name: str, command: dict[str, Any]) -> list[Query]:
    collection = command[name]
    base = {
        "label": _label.get(),
        "allowed_scan": _allowed_scan.get(),
        "service": service,
        "collection": collection,
    }
    if name == "find":
        return [
            Query(
                **base,
                filter=command.get("filter", {}),
                sort=command.get("sort"),
                limit=command.get("limit"),
            )
        ]
    if name == "update":
        return [Query(**base, filter=u["q"]) for u in command["updates"]]
    if name == "delete":
        return [Query(**base, filter=d["q"]) for d in command["deletes"]]
    if name == "findAndModify":
        return [Query(**base, filter=command.get("query", {}), sort=command.get("sort"))]
    if name in ("count", "distinct"):
        return [Query(**base, filter=command.get("query", {}))]
    pipeline = command["pipeline"]
    leading = pipeline[0].get("$match", {}) if pipeline else {}
    return [Query(**base, filter=leading, pipeline=pipeline)]


def equality_fields(document_filter: Mapping[str, Any]) -> set[str]:
    """The fields FerretDB 1.24 pushes down as an equality (`prepareWhereClause`): top-level
    fields (no dot, no operator) compared with a string, number, boolean, date or ObjectId, plainly
    or with `$eq`. Everything else (`$in`, ranges, `$or`, `$exists`, null, documents, arrays) is
    filtered in Go after reading the rows the equalities matched."""
    fields = set()
    for key, value in document_filter.items():
        if key.startswith("$") or "." in key:
            continue
        if isinstance(value, Mapping):
            value = value.get("$eq")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
            continue
        if isinstance(value, PUSHABLE):
            fields.add(key)
    return fields


def leading_keys(declared: IndexDeclaration) -> dict[str, set[str]]:
    """Collection → the first key of each declared index."""
    keys: dict[str, set[str]] = {}
    for collection, indexes in declared.items():
        keys[collection] = {next(iter(index.document["key"])) for index in indexes}
    return keys


async def _explain(db: AsyncDatabase[Any], query: Query) -> dict[str, Any]:
    if query.pipeline is not None:
        command: dict[str, Any] = {
            "aggregate": query.collection,
            "pipeline": list(query.pipeline),
            "cursor": {},
        }
    else:
        command = {"find": query.collection, "filter": dict(query.filter)}
        if query.sort:
            command["sort"] = dict(query.sort)
        if query.limit:
            command["limit"] = query.limit
    return await db.command("explain", command)


async def index_problem(db: AsyncDatabase[Any], query: Query, leading: set[str]) -> str | None:
    """Why `query` is not served by an index on FerretDB/PostgreSQL and MongoDB, or None."""
    explained = await _explain(db, query)
    if not query.filter:
        # No condition: fine only when FerretDB reads just `limit` rows (`find_one({})`).
        if explained.get("limitPushdown"):
            return None
        return "no filter: reads the whole collection"
    if not explained.get("filterPushdown"):
        return "no condition is pushed down: FerretDB reads the whole collection"
    planned = set(PUSHED_EQUALITY.findall(json.dumps(explained.get("queryPlanner"))))
    pushed = equality_fields(query.filter) & planned
    if not pushed & (leading | {"_id"}):
        return (
            f"pushed-down equalities {sorted(pushed)} include neither _id nor the first key of "
            f"a declared index ({sorted(leading)})"
        )
    return None


async def problems(
    client: AsyncMongoClient[Any], recorder: Recorder, queries: Sequence[Query]
) -> list[str]:
    found = []
    keys = {service: leading_keys(declared) for service, declared in DECLARED.items()}
    for query in queries:
        if query.label is None or query.label in ONE_OFF or query.allowed_scan:
            continue  # the test's own set-up, start-up, or a scan allowed with its reason
        if query.label in WHOLE_READS:
            if query.filter:
                found.append(f"{query}: a whole-collection read sends a filter")
            continue
        db = client[recorder.prefix + query.service]
        leading = keys[query.service].get(query.collection, set())
        if problem := await index_problem(db, query, leading):
            found.append(f"{query}: {problem}")
    return found


async def indexes_not_created(db: AsyncDatabase[Any], declared: IndexDeclaration) -> list[str]:
    """Declared indexes the database does not have."""
    absent = []
    for collection, indexes in declared.items():
        cursor = await db[collection].list_indexes()
        present = [list(index["key"].items()) async for index in cursor]
        absent.extend(
            f"{db.name}.{collection} {dict(index.document['key'])}"
            for index in indexes
            if list(index.document["key"].items()) not in present
        )
    return absent


def public_coroutines(cls: type) -> list[str]:
    return [
        name
        for name, _ in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    ]


def public_methods(*classes: type) -> set[str]:
    return {f"{cls.__name__}.{name}" for cls in classes for name in public_coroutines(cls)}


class _Broker:
    """Stands in for Kafka: the relay's queries are the subject here."""

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
async def recorded(mongo_url: str, unique: str) -> AsyncIterator[tuple[Any, Recorder]]:
    recorder = Recorder(prefix=f"test_{unique}_")
    client = create_mongo_client(mongo_url, event_listeners=[recorder])
    yield client, recorder
    for service in DECLARED:
        await client.drop_database(recorder.prefix + service)
    await client.close()


async def _relay_passes(recorder: Recorder, collection: Any, pending_id: Any) -> None:
    relay = recorder.instrument(OutboxRelay(collection, _Broker()))  # type: ignore[arg-type]
    assert await relay.publish_documents([pending_id]) > 0
    await collection.update_one(
        {"_id": pending_id}, outbox_update([("t", wrap(submitted(), "/test"))])
    )
    assert await relay.publish_pending() >= 1


async def exercise_intake(db: AsyncDatabase[Any], recorder: Recorder) -> None:
    store = recorder.instrument(IntakeStore(db))
    await store.ensure_indexes()
    units, procedures = load_catalogue()
    await store.save_units(units[:2])
    await store.save_procedures(procedures[:3])
    await store.flag_unpublished()
    first = procedures[0]
    pending = await store.unpublished_procedures()
    await store.mark_published([(p.code, sha) for p, sha in pending])
    assert await store.get_procedure(first.code) is not None
    assert await store.cached_procedure(first.code) is not None
    # An administrator's change: compare-and-set on `_id` and the content's version.
    _, version = await store.procedure_version(first.code) or (None, "")
    changed = first.model_copy(update={"name": first.name + " (sửa)"})
    assert await store.replace_procedure(changed, version) is not None
    assert await store.replace_procedure(changed, version) is None  # that version is gone
    await store.all_procedures()
    await store.list_units()
    for unit_code, level, field_name in (
        (first.unit_code, None, None),
        (None, first.level, None),
        (None, None, first.field),
    ):
        await store.search_procedures(
            terms=["thu"], unit_code=unit_code, level=level, field=field_name, after="0", limit=5
        )
    with allowed_scan("free text alone: a regex over the folded text of the small catalogue"):
        await store.search_procedures(
            terms=["thu"], unit_code=None, level=None, field=None, after=None, limit=5
        )

    code = dossier_code(1)

    def new_dossier(dossier_code_: str) -> Dossier:
        return stored_dossier(first, dossier_code_)

    def build(number: int) -> tuple[Dossier, list[tuple[str, Any]]]:
        return new_dossier(code), [("t", wrap(submitted(code), "/test"))]

    await store.insert_with_next_code("G12-261129", build)
    await store.insert_dossier(new_dossier(dossier_code(2)), [("t", wrap(submitted(), "/test"))])
    assert await store.get_dossier(code) is not None
    assert await store.dossier_record(code) is not None
    assert await store.request_withdrawal(code, 1, [])
    step = processing_step(processed(code, DossierState.RECEIVED, "receive"))
    assert step is not None
    assert await store.apply_processing_step(code, "event-1", step)
    assert await store.add_inbox_message(
        code, "event-2", InboxMessage(at=datetime.now(UTC), body="Hồ sơ đã được tiếp nhận")
    )
    assert await store.add_supplement(code, [], []) is False  # no supplement was requested
    assert await store.mark_paid(code, "tx-0", [])
    rating = Rating(score=5, at=datetime.now(UTC))
    assert await store.add_rating(code, rating, []) is False  # not finished yet
    assert await store.dossier_exists(code)
    [storage_id] = await store.store_attachments(
        [
            NewAttachment(
                b"%PDF-1.4", file_name="to_khai.pdf", content_type="application/pdf", metadata={}
            )
        ]
    )
    await store.delete_attachments([storage_id])

    assert await store.reserve_idempotency_key("key-1", "fingerprint", reservation="r1") is None
    answer = IdempotencyClaim("key-1", "r1").answer(201, {"code": dossier_code(3)})
    await store.insert_dossier(new_dossier(dossier_code(3)), [], answer=answer)
    replayed = await store.reserve_idempotency_key("key-1", "fingerprint", reservation="r2")
    assert replayed is not None
    assert await store.reserve_idempotency_key("key-2", "fingerprint", reservation="r3") is None
    with pytest.raises(IdempotencyConflict):  # no answer yet, in the dossiers or beside the key
        await store.reserve_idempotency_key("key-2", "fingerprint", reservation="r4")
    await store.release_idempotency_key("key-2", "r3")
    await store.delete_expired_idempotency_records(date.today())

    await store.create_payment(
        {"_id": "tx-1", "dossier_code": code, "status": "pending", "amount_vnd": 300_000}
    )
    assert await store.get_payment("tx-1") is not None
    assert await store.record_callback(
        "tx-1", {"amount_vnd": 300_000}, {"status": "callback_received"}, pending=True
    )
    assert await store.pending_callback("tx-1") is not None
    assert await store.pending_callbacks(10)
    assert await store.finish_callback("tx-1", {"status": "settled"})
    assert await store.latest_payment(code, "request-1") is None
    await store.set_payment_url("tx-1", "https://pay.example.test/tx-1")
    await store.record_amount_mismatch("tx-1", {"amount_vnd": 1})
    assert await store.abandon_payment("tx-1", "abandoned") is False

    await _relay_passes(recorder, store.dossiers, code)


async def exercise_processing(db: AsyncDatabase[Any], recorder: Recorder) -> None:
    store = recorder.instrument(CaseStore(db, processed_topic="processed", source="/test"))
    rules = ProcessingService(
        settings=ProcessingSettings(),
        store=store,
        relay=None,  # type: ignore[arg-type]
    ).rules
    await store.ensure_indexes()
    received_at = datetime(2026, 11, 30, 9, tzinfo=UTC)
    codes = [dossier_code(n) for n in (11, 12)]
    for code in codes:
        opened = open_case(submitted(code), PROCEDURE, rules)
        assert await store.insert(opened, f"submitted-{code}")
        stored = await store.load(code)
        assert stored is not None
        received = apply(stored.case, Command(Action.RECEIVE, "officer-1", received_at), rules)
        await store.save(received, stored.case.version, event_id=f"receive-{code}")

    later = received_at + timedelta(days=60)
    page, cursor = await store.worklist(unit_code="G12", limit=1)
    assert page and cursor
    await store.worklist(unit_code="G12", cursor=cursor, limit=1)
    await store.worklist(unit_code=None, limit=10)
    await store.worklist(unit_code="G12", states=[2, 4], procedure_code=PROCEDURE.code)
    await store.worklist(unit_code="G12", overdue_at=later)
    await store.worklist(unit_code="G12", channel=1, code=codes[0])
    await store.state_counts(unit_code="G12", procedure_code=PROCEDURE.code, channel=1)
    await store.state_counts(unit_code=None)
    assert await store.due_for_check(later, 10)
    assert await store.next_check_after(received_at) is not None
    due = await store.due_for_check(later, 1)
    await store.postpone_check(due[0], later + timedelta(minutes=15))
    await store.counts_by_unit_and_state()
    await store.overdue_by_unit(later)

    await store.put_procedure(PROCEDURE)
    assert await store.get_procedure(PROCEDURE.code) is not None
    await store.add_calendar_change(CalendarChange(day=date(2026, 12, 31), working=False), "admin")
    await store.calendar_changes_list()
    assert await store.claim_lease("deadline-scanner", "replica-a", timedelta(seconds=60))
    await store.release_lease("deadline-scanner", "replica-a")

    await store.cases.update_one(
        {"_id": codes[0]}, outbox_update([("t", wrap(submitted(), "/test"))])
    )
    await _relay_passes(recorder, store.cases, codes[0])
    await exercise_processing_staff(db, recorder)


async def exercise_processing_staff(db: AsyncDatabase[Any], recorder: Recorder) -> None:
    """The staff directory (`GET /api/v1/staff`, and a write per member every few minutes)."""
    staff = recorder.instrument(StaffStore(db))
    await staff.ensure_indexes()
    await staff.record(
        subject="s-1",
        name="Cán bộ",
        username="cv",
        unit="G12",
        roles=["officer"],
        at=datetime.now(UTC),
    )
    assert [m.subject for m in await staff.members_of("G12")] == ["s-1"]
    assert await staff.name_of("s-1") == "Cán bộ"


async def exercise_notification(db: AsyncDatabase[Any], recorder: Recorder) -> None:
    store = recorder.instrument(NotificationStore(db))
    await store.ensure_indexes()
    code, now = dossier_code(21), datetime.now(UTC)
    await store.save_recipient(code, {"email": "a@example.vn", "channels": ["email"]})
    assert await store.recipient(code) is not None
    delivery = {
        "_id": "n-1",
        "source_event_id": "event-1",
        "channel": "email",
        "dossier_code": code,
        "status": "created",
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "created_at": now,
        "updated_at": now,
    }
    assert await store.create_delivery(delivery)
    assert await store.delivery("n-1") is not None
    assert await store.due_ids(now, 10) == ["n-1"]
    assert await store.claim("n-1", now, timedelta(seconds=60), "claim-1") is not None
    # The notifier's compare-and-set filters (`Notifier._attempt`, `apply_receipt`, `poll_once`).
    owned = {"_id": "n-1", "status": "sending", "claim": "claim-1"}
    assert await store.update_and_read(owned, {"$set": {"status": "sending"}})
    assert await store.update_where(owned, {"$set": {"status": "sent"}})
    awaiting = {"_id": "n-1", "status": {"$in": ["sending", "sent"]}}
    await store.update_where(awaiting, {"$set": {"fallback_pending": True}, **outbox_update([])})
    await store.pending_fallbacks(now + timedelta(seconds=1))
    await store.update_where({"_id": "n-1"}, {"$set": {"fallback_pending": False}})
    assert await store.deliveries_for(code)
    await store.inbox_for(code)
    await store.deliveries.update_one(
        {"_id": "n-1"}, outbox_update([("t", wrap(submitted(), "/test"))])
    )
    await _relay_passes(recorder, store.deliveries, "n-1")

    await exercise_webhooks(db, recorder)
    await exercise_portal(db, recorder)


async def exercise_webhooks(db: AsyncDatabase[Any], recorder: Recorder) -> None:
    store = recorder.instrument(WebhookStore(db))
    await store.ensure_indexes()
    jobs = recorder.instrument(ReplayJobStore(db))
    await jobs.insert({"_id": "job-1", "status": "running"})
    assert await jobs.job("job-1") is not None
    await jobs.update("job-1", {"status": "done"})
    assert await jobs.running("dept-sci", datetime.now(UTC) - timedelta(minutes=5)) == 0
    now = datetime.now(UTC)
    key = await store.create_agency("dept-sci", "Sở KH&CN")
    assert await store.agency_for_key(key) is not None
    await store.insert_subscription(
        {"_id": "sub-1", "agency_id": "dept-sci", "status": "active", "created_at": now}
    )
    assert await store.subscription("sub-1") is not None
    assert await store.subscriptions_of("dept-sci")
    assert await store.live_subscriptions()
    deliveries = [
        {
            "_id": delivery_id("sub-1", f"event-{n}"),
            "subscription_id": "sub-1",
            "status": DeliveryStatus.PENDING,
            "seq": n,
            "partition": n % 3,
            "attempts": 0,
            "created_at": now,
        }
        for n in range(3)
    ]
    assert len(await store.insert_deliveries(deliveries)) == 3
    await store.write_outcomes([(deliveries[0]["_id"], {"$set": {"status": "failed"}})])
    assert await store.pending("sub-1", {0, 1, 2}, 10)
    await store.pending("sub-1", None, 10)
    await store.delivery_log("sub-1", status=None, since=None, limit=10)
    await store.delivery_log(
        "sub-1", status=DeliveryStatus.FAILED, since=now - timedelta(hours=1), limit=10
    )
    assert await store.redrive("sub-1", now - timedelta(hours=1)) == 1
    await store.redrive("sub-1", None)
    await store.upsert_replayed([{**deliveries[1], "replayed_at": now}])
    await store.update_subscription("sub-1", {"status": "paused"})
    await store.delete_subscription("sub-1")
    assert await store.revoke_keys("dept-sci") == 1


async def exercise_portal(db: AsyncDatabase[Any], recorder: Recorder) -> None:
    store = recorder.instrument(PortalStore(db))
    await store.ensure_indexes()
    code, now = dossier_code(31), datetime.now(UTC)
    await db["portal_sync"].insert_one({"_id": dossier_code(32), "status": "synced"})
    assert await store.migrate_sync_collection(now) == 1
    update = {"$set": {"procedure_code": PROCEDURE.code}}
    assert await store.record(code, "event-1", update, now)
    assert not await store.record(code, "event-1", update, now)  # redelivered
    assert await store.due_codes(now, 10) == [code]
    document = await store.claim(code, now, timedelta(seconds=60), "claim-1")
    assert document is not None and document["seq"] == 1
    assert not await store.update_owned(code, "claim-1", {"$set": {"status": "failed"}}, seq=2)
    assert await store.update_owned(code, "claim-1", {"$set": {"status": "failed"}}, seq=1)
    assert await store.update_owned(code, "claim-1", {"$set": {"status": "failed"}})
    assert await store.sync_state(code) is not None
    assert await store.codes_with_status("failed") == [code]
    assert (await store.counts())["failed"] == 1
    later = now + timedelta(minutes=5)
    reset = await store.reset_for_resync(code, later, timedelta(seconds=60), "claim-r")
    assert isinstance(reset, dict) and reset["claim"] == "claim-r"
    # Claimed by the reset itself: the service's own workers cannot take it meanwhile.
    assert await store.claim(code, later, timedelta(seconds=60), "claim-w") is None
    claimed = await store.record_and_claim(
        code, "event-2", update, later + timedelta(minutes=5), timedelta(seconds=60), "claim-2"
    )
    assert claimed is not None and claimed["claim"] == "claim-2"
    lease = timedelta(seconds=60)
    first = await store.record_and_claim(
        dossier_code(33), "event-3", update, now, lease, "claim-3", first=True
    )
    assert first is not None and first["claim"] == "claim-3"


async def exercise_reporting(db: AsyncDatabase[Any], recorder: Recorder) -> None:
    store = recorder.instrument(ReportingStore(db))
    await store.ensure_indexes()
    # The pointer a rebuild writes (before the first rebuild the collection does not exist).
    await db[POINTER_COLLECTION].update_one(
        {"_id": POINTER_ID}, {"$set": {"prefix": ""}}, upsert=True
    )
    with recorder.as_call("read_active_prefix"):
        assert await read_active_prefix(db) == ""
    await store.save_procedure(PROCEDURE)
    event = submitted(dossier_code(41))
    assert await store.record(event.dossier_code, "event-1", facts_update(event))
    await store.reconcile(event.dossier_code)
    assert await store.counters_for(["2026-Q4"])
    await store.all_counters()
    await store.all_procedures()


SERVICES: dict[str, Callable[[AsyncDatabase[Any], Recorder], Awaitable[None]]] = {
    "intake": exercise_intake,
    "processing": exercise_processing,
    "notification": exercise_notification,
    "reporting": exercise_reporting,
}
STORES = (
    IntakeStore,
    CaseStore,
    NotificationStore,
    WebhookStore,
    ReplayJobStore,
    PortalStore,
    ReportingStore,
    StaffStore,
)


async def test_every_repeated_store_query_is_served_by_a_declared_index(recorded) -> None:
    client, recorder = recorded
    for service, exercise in SERVICES.items():
        await exercise(client[recorder.prefix + service], recorder)

    missing = public_methods(*STORES, OutboxRelay) - recorder.called - set(NOT_EXERCISED)
    assert not missing, f"store methods not exercised by this test (add them): {sorted(missing)}"
    # The labels reach the listener (also through the relay's `gather` and GridFS); unlabelled
    # commands are the test's own set-up and are not checked.
    assert {q.label for q in recorder.queries} >= {
        "CaseStore.due_for_check",
        "NotificationStore.due_ids",
        "IntakeStore.delete_attachments",
        "OutboxRelay.publish_documents",
        "OutboxRelay.publish_pending",
    }
    absent = [
        missing
        for service, declared in DECLARED.items()
        for missing in await indexes_not_created(client[recorder.prefix + service], declared)
    ]
    assert not absent, f"declared but not created by ensure_indexes: {absent}"
    found = await problems(client, recorder, recorder.queries)
    assert not found, "queries not served by an index:\n" + "\n".join(found)


async def test_a_range_alone_or_an_unindexed_equality_is_refused(mongo_db) -> None:
    """The check above fails for a scan: a range without an equality, an `$or`, an equality on a
    field no declared index leads with, and a whole-collection read."""
    cases = mongo_db["cases"]
    await cases.insert_one({"_id": "c", "watched": True, "next_check_at": datetime.now(UTC)})
    leading = leading_keys(processing_store.INDEXES)["cases"]
    now = datetime.now(UTC)

    def query(document_filter: dict[str, Any]) -> Query:
        return Query("t", None, "processing", "cases", document_filter)

    assert (
        await index_problem(
            mongo_db, query({"watched": True, "next_check_at": {"$lte": now}}), leading
        )
        is None
    )
    assert await index_problem(mongo_db, query({"_id": "c", "version": 3}), leading) is None
    for scan in (
        {"next_check_at": {"$lte": now}},
        {"$or": [{"watched": True}, {"active": True}]},
        {"state": 4, "next_check_at": {"$lte": now}},
        {"watched": {"$in": [True]}},
        {},
    ):
        assert await index_problem(mongo_db, query(scan), leading), scan


async def test_declared_indexes_are_created_again_at_every_start(mongo_client, unique) -> None:
    """`ensure_indexes` runs at every start: declaring what exists already changes nothing (and
    does not trip FerretDB's `createIndexes` of several existing indexes)."""
    for service, declared in DECLARED.items():
        db = mongo_client[f"test_{unique}_{service}"]
        try:
            for _ in range(2):
                await ensure_indexes(db, declared)
            assert not await indexes_not_created(db, declared)
        finally:
            await mongo_client.drop_database(db.name)
