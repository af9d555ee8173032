"""The contact details and messages of finished dossiers are erased past retention (issue 14,
Decree 13/2023): `python -m services.notification.citizens.erasure`, on the real broker and
FerretDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from services.notification.citizens.adapters.store import INDEXES
from services.notification.citizens.erasure import erase_finished_contacts
from services.notification.settings import NotificationSettings
from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierState
from tests.factories import dossier_code, processed, submitted
from tests.integration.notification.conftest import Topics, eventually, publish, running
from tests.integration.notification.servers import SmsGateway

PHONE, EMAIL, NAME = "0912345678", "a@example.vn", "Nguyễn Văn A"
LONG_AGO = datetime.now(UTC) - timedelta(days=800)


def personal(documents: list[dict[str, Any]]) -> list[str]:
    text = json.dumps(documents, default=str, ensure_ascii=False)
    return [value for value in (PHONE, EMAIL, NAME) if value in text]


async def dossier_documents(db: Any, code: str) -> list[dict[str, Any]]:
    found = [d async for d in db["recipients"].find({"_id": code})]
    for name in ("deliveries", "inbox"):
        found += [d async for d in db[name].find({"dossier_code": code})]
    return found


async def test_finished_dossiers_lose_their_contacts_and_message_texts(
    settings: NotificationSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    sms_gateway: SmsGateway,
    mongo_client: Any,
) -> None:
    returned, still_open = dossier_code(61), dossier_code(62)
    async with running(settings) as (app, _):
        for code in (returned, still_open):
            await publish(producer, topics.submitted, wrap(submitted(code), "/dvc/intake"))
        await eventually(lambda: _true(len(sms_gateway.to(PHONE)) == 2))
        step = processed(
            returned,
            DossierState.RESULT_RETURNED,
            "return_result",
            previous_state=DossierState.PROCESSED,
            occurred_at=LONG_AGO,
        )
        await publish(producer, topics.processed, wrap(step, "/dvc/processing"))
        await eventually(lambda: _true(len(sms_gateway.to(PHONE)) == 3))
        db = mongo_client[settings.database_name]

        async def marked() -> bool:
            recipient = await db["recipients"].find_one({"_id": returned})
            return bool(recipient and recipient.get("erasable"))

        await eventually(marked)
        deliveries = app.state.notification.citizens.store

        async def all_sent() -> bool:
            found = await deliveries.deliveries_for(returned)
            return len(found) == 2 and all(d["status"] != "created" for d in found)

        await eventually(all_sent)

    dry = await erase_finished_contacts(db, older_than_days=730, dry_run=True)
    assert dry.erased == [returned]
    assert personal(await dossier_documents(db, returned))  # nothing changed yet

    result = await erase_finished_contacts(db, older_than_days=730)
    assert result.erased == [returned]
    erased = await dossier_documents(db, returned)
    assert personal(erased) == []
    deliveries_left = [d for d in erased if "status" in d]
    assert len(deliveries_left) == 2  # the delivery log stays: template, channel, status
    assert all(d["template"] and d["status"] and d["channel"] for d in deliveries_left)
    assert personal(await dossier_documents(db, still_open))  # not finished: kept

    again = await erase_finished_contacts(db, older_than_days=730)
    assert again.erased == []


async def test_the_search_is_served_by_the_declared_index(mongo_db) -> None:
    from services.notification.citizens.adapters.erasure import ContactErasureStore
    from shared.runtime.mongo import ensure_indexes
    from tests.integration.test_query_indexes import Query, index_problem, leading_keys

    await ensure_indexes(mongo_db, INDEXES)
    await mongo_db["recipients"].insert_one(
        {"_id": "x", "erasable": True, "finished_at": LONG_AGO, "phone": PHONE}
    )
    cutoff = datetime.now(UTC) - timedelta(days=730)
    assert await ContactErasureStore(mongo_db).erasable_before(cutoff, limit=5) == ["x"]
    leading = leading_keys(INDEXES)
    for collection, document_filter, sort in (
        ("recipients", {"erasable": True, "finished_at": {"$lt": cutoff}}, {"finished_at": 1}),
        ("deliveries", {"dossier_code": "x"}, None),
        ("inbox", {"dossier_code": "x"}, None),
    ):
        query = Query("erasure", None, "notification", collection, document_filter, sort=sort)
        assert await index_problem(mongo_db, query, leading.get(collection, set())) is None


async def _true(value: bool) -> bool:
    return value
