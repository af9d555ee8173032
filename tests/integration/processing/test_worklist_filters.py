"""The worklist's filters and counts in processing's officer API, on the real MongoDB-protocol
server: counts per state of the officer's unit, the channel filter, the search by dossier code,
the unit rule; each served by a declared index (see `adapters/store.py`, `INDEXES`).

Cases are stored directly (no broker: the app's lifespan is not started, the API answers from
the store alone)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.processing.adapters.store import CASES, INDEXES, _fields
from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.case import Case
from services.processing.domain.workflow import Rules, refresh
from shared.contracts.events import Channel, DossierState
from shared.runtime.auth import DevIssuer
from tests.service_harness import processing_on_database

pytestmark = pytest.mark.infra

NOW = datetime.now(UTC)
CASES_STORED = [
    # (number, unit, channel, state)
    (1, "G12", Channel.ONLINE, DossierState.SUBMITTED),
    (2, "G12", Channel.COUNTER, DossierState.RECEIVED),
    (3, "G12", Channel.POST, DossierState.IN_PROCESSING),
    (4, "G12", Channel.ONLINE, DossierState.IN_PROCESSING),
    (5, "G12", Channel.COUNTER, DossierState.IN_PROCESSING),
    (6, "G12", Channel.ONLINE, DossierState.RESULT_RETURNED),  # finished: not counted
    (7, "G13", Channel.COUNTER, DossierState.IN_PROCESSING),  # another unit
]


def code(number: int, unit: str) -> str:
    return f"000.00.21.{unit}-261205-{number:04d}"


def document(number: int, unit: str, channel: Channel, state: DossierState) -> dict[str, Any]:
    received = state != DossierState.SUBMITTED
    case = Case(
        code=code(number, unit),
        procedure_code="1.004473" if number % 2 else "1.004474",
        procedure_name="Thủ tục",
        unit_code=unit,
        level=4,
        channel=channel,
        state=state,
        applicant_name="Nguyễn Văn A",
        submitted_at=NOW - timedelta(days=number),
        received_at=NOW - timedelta(days=number) if received else None,
        due_at=NOW + timedelta(days=number) if received else None,
    )
    case = refresh(case, Rules(WorkingCalendar(), warning_fractions=()))
    return {"_id": case.code, **_fields(case), "version": 1, "history": []}


class Api:
    def __init__(self, client: httpx.AsyncClient, issuer: DevIssuer) -> None:
        self.client = client
        self.issuer = issuer

    async def get(self, path: str, role: str = "officer", unit: str | None = "G12") -> Any:
        token = self.issuer.mint("officer-1", [role], unit)
        answer = await self.client.get(path, headers={"Authorization": f"Bearer {token}"})
        return answer


@pytest.fixture
async def api(mongo_url: str, mongo_db: Any, tmp_path: Path) -> AsyncIterator[Api]:
    issuer = DevIssuer(tmp_path / "issuer")
    app = await processing_on_database(mongo_url, mongo_db.name, issuer)
    await mongo_db[CASES].insert_many([document(*spec) for spec in CASES_STORED])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://processing") as client:
        yield Api(client, issuer)


async def test_counts_per_state_are_the_officers_units_open_cases(api: Api) -> None:
    answer = await api.get("/api/v1/case-counts")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["unit_code"] == "G12" and body["total"] == 5
    assert body["states"] == [
        {"state": 1, "count": 1},
        {"state": 2, "count": 1},
        {"state": 4, "count": 3},
    ]
    counter = (await api.get("/api/v1/case-counts?channel=1")).json()
    assert counter["total"] == 2 and counter["states"] == [
        {"state": 2, "count": 1},
        {"state": 4, "count": 1},
    ]
    procedure = (await api.get("/api/v1/case-counts?procedure=1.004473")).json()
    assert procedure["total"] == 3  # numbers 1, 3, 5


async def test_counts_follow_the_worklists_unit_rule(api: Api) -> None:
    refused = await api.get("/api/v1/case-counts?unit=G13")
    assert refused.status_code == 403
    every_unit = (await api.get("/api/v1/case-counts", role="admin", unit=None)).json()
    assert every_unit["unit_code"] is None and every_unit["total"] == 6
    one = (await api.get("/api/v1/case-counts?unit=G13", role="admin", unit=None)).json()
    assert one["total"] == 1
    assert (await api.get("/api/v1/case-counts", role="counter_officer")).status_code == 403
    assert (await api.get("/api/v1/case-counts?channel=9")).status_code == 422


async def test_the_worklist_filters_by_channel_and_finds_a_code(api: Api) -> None:
    post = (await api.get("/api/v1/cases?channel=3")).json()
    assert [item["code"] for item in post["items"]] == [code(3, "G12")]
    counter = (await api.get("/api/v1/cases?channel=1&state=4")).json()
    assert [item["code"] for item in counter["items"]] == [code(5, "G12")]
    found = (await api.get(f"/api/v1/cases?code={code(4, 'G12')}")).json()
    assert [item["code"] for item in found["items"]] == [code(4, "G12")]
    # Another unit's code, or a finished case's, is not on the officer's worklist.
    for other in (code(7, "G13"), code(6, "G12")):
        assert (await api.get(f"/api/v1/cases?code={other}")).json()["items"] == []


def test_the_new_filters_have_their_indexes() -> None:
    keys = [list(index.document["key"]) for index in INDEXES[CASES]]
    assert ["unit_code", "active", "channel", "online_rank", "due_sort", "_id"] in keys
    assert ["unit_code", "active", "state"] in keys


async def test_pages_run_online_first_then_by_due_date_across_the_cursor(api: Api) -> None:
    codes: list[str] = []
    cursor = ""
    while True:
        page = (await api.get(f"/api/v1/cases?limit=2{cursor}")).json()
        codes += [item["code"] for item in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    online = [code(n, "G12") for n in (4, 1)]  # 1 has no due date yet: last of its rank
    others = [code(n, "G12") for n in (2, 3, 5)]
    assert codes == online + others


async def test_stale_counts_are_answered_at_once_and_recounted_behind(
    api: Api, mongo_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.processing.service import cases as service_module

    first = (await api.get("/api/v1/case-counts")).json()
    assert first["total"] == 5
    await mongo_db[CASES].insert_one(document(8, "G12", Channel.ONLINE, DossierState.SUBMITTED))

    # Within the cache's time: the same counts, not recounted.
    assert (await api.get("/api/v1/case-counts")).json()["total"] == 5
    # Past it: the stale counts at once (a page never waits for a recount) ...
    monkeypatch.setattr(service_module, "STATE_COUNTS_CACHE_SECONDS", 0.0)
    assert (await api.get("/api/v1/case-counts")).json()["total"] == 5
    # ... while the recount runs behind; the next page has it.
    for _ in range(100):
        await asyncio.sleep(0.05)
        if (await api.get("/api/v1/case-counts")).json()["total"] == 6:
            break
    else:
        pytest.fail("the counts were never recounted")
    # Counts too old to show are counted before answering.
    await mongo_db[CASES].insert_one(document(9, "G12", Channel.ONLINE, DossierState.SUBMITTED))
    monkeypatch.setattr(service_module, "STATE_COUNTS_STALE_SECONDS", 0.0)
    assert (await api.get("/api/v1/case-counts")).json()["total"] == 7
