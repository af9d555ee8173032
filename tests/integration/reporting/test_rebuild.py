"""The rebuild against the real broker and database: replaying the topics into fresh collections
gives exactly the figures built incrementally, the swap reaches the running service, and the
service's consumer keeps writing to the new set."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from services.reporting.rebuild import rebuild
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import wrap
from shared.contracts.events import Channel
from tests.integration.reporting.test_reporting_service import (  # noqa: F401 (fixture)
    auth,
    publish_all,
    reporting,
    wait_consumed,
)
from tests.unit.reporting.scenario import T0, script, submitted

URLS = (
    "/api/v1/reports/quarterly?year=2026&quarter=1",
    "/api/v1/reports/quarterly?from=2025-10-01&to=2026-06-30",
)


async def reports(client: Any, headers: dict[str, str]) -> list[Any]:
    out = []
    for url in URLS:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        out.append(response.json())
    return out


async def test_rebuild_equals_incremental_and_swaps_in(reporting: Any) -> None:  # noqa: F811
    client, settings, issuer = reporting
    admin = auth(issuer, "admin")
    events = [
        (m, wrap(m, "/test", time=T0 if isinstance(m, Procedure) else None)) for m in script()
    ]
    await publish_all(settings, events)
    await wait_consumed(settings)
    incremental = await reports(client, admin)
    assert incremental[0]["ministry"]["counts"]["received"] == 6

    result = await rebuild(settings)

    assert result.previous_prefix == "" and result.prefix.startswith("rebuild_")
    assert result.events == len(events) and result.skipped == 0
    with MongoClient(settings.mongo_url) as mongo:
        db = mongo[settings.database_name]
        pointer = db["read_model_pointer"].find_one({"_id": "active"})
        names = set(db.list_collection_names())
    assert pointer is not None and pointer["prefix"] == result.prefix
    assert {f"{result.prefix}counters", f"{result.prefix}dossiers"} <= names
    assert "counters" not in names  # the old set is dropped: the API now reads the new one
    assert await reports(client, admin) == incremental

    # The running service's consumer writes to the swapped-in set.
    late = submitted(7, "P2", 3, Channel.ONLINE)
    await publish_all(settings, [(late, wrap(late, "/test"))])
    await wait_consumed(settings)
    after = (await reports(client, admin))[0]["ministry"]["counts"]
    assert after["received"] == 7 and after["online"] == 4
