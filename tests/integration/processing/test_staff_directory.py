"""Processing's staff directory, on the real MongoDB-protocol server: each staff member who calls
the officer API is recorded (from their verified token, at most once per few minutes per
process), and `GET /api/v1/staff` lists a unit's officers for the unit head's assignment form
(unit heads their own unit, administrators any; 403 for the others).

No broker: the app's lifespan is not started, the API answers from the database alone."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from services.processing.adapters.staff import STAFF, StaffStore
from services.processing.adapters.store import CASES
from services.processing.service.staff import StaffDirectory
from shared.contracts.events import Channel, DossierState
from shared.runtime.auth import DevIssuer, Role, Staff
from tests.integration.processing.test_worklist_filters import document
from tests.service_harness import processing_on_database

pytestmark = pytest.mark.infra


class Api:
    def __init__(self, app: Any, client: httpx.AsyncClient, issuer: DevIssuer) -> None:
        self.app = app
        self.client = client
        self.issuer = issuer

    def token(
        self,
        subject: str,
        roles: list[str],
        unit: str | None,
        *,
        name: str | None = None,
        username: str | None = None,
    ) -> str:
        """A token of the development issuer, with the provider's `preferred_username` too."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer.issuer,
            "aud": self.issuer.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "roles": roles,
        }
        for claim, value in (("unit", unit), ("name", name), ("preferred_username", username)):
            if value is not None:
                claims[claim] = value
        return jwt.encode(
            claims,
            self.issuer._private_key,
            algorithm=self.issuer.algorithm,
            headers={"kid": self.issuer.kid},
        )

    async def get(self, path: str, token: str) -> httpx.Response:
        return await self.client.get(path, headers={"Authorization": f"Bearer {token}"})

    async def call_as(
        self, subject: str, roles: list[str], unit: str | None, **claims: str
    ) -> httpx.Response:
        """Any officer API call: here the unit's worklist (admins: every unit's)."""
        answer = await self.get("/api/v1/cases", self.token(subject, roles, unit, **claims))
        assert answer.status_code == 200, answer.text
        return answer

    @property
    def directory(self) -> StaffDirectory:
        directory: StaffDirectory = self.app.state.processing.staff
        return directory


@pytest.fixture
async def api(mongo_url: str, mongo_db: Any, tmp_path: Path) -> AsyncIterator[Api]:
    issuer = DevIssuer(tmp_path / "issuer")
    app = await processing_on_database(mongo_url, mongo_db.name, issuer)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://processing") as client:
        yield Api(app, client, issuer)


async def test_an_officer_who_calls_processing_is_recorded(api: Api, mongo_db: Any) -> None:
    before = datetime.now(UTC)
    await api.call_as("id-cv", ["officer"], "G12", name="Nguyễn Văn Chuyên", username="cv.g12")
    recorded = await mongo_db[STAFF].find_one({"_id": "id-cv"})
    assert recorded is not None
    assert {k: v for k, v in recorded.items() if k != "last_seen"} == {
        "_id": "id-cv",
        "name": "Nguyễn Văn Chuyên",
        "username": "cv.g12",
        "unit": "G12",
        "roles": ["officer"],
    }
    assert recorded["last_seen"].replace(tzinfo=UTC) >= before.replace(microsecond=0)

    # The next requests within a few minutes write nothing (the process remembers) ...
    await mongo_db[STAFF].update_one({"_id": "id-cv"}, {"$set": {"marker": 1}})
    await api.call_as("id-cv", ["officer"], "G12", name="Nguyễn Văn Chuyên", username="cv.g12")
    again = await mongo_db[STAFF].find_one({"_id": "id-cv"})
    assert again is not None and again["last_seen"] == recorded["last_seen"]

    # ... unless the token says something else (moved to another unit): recorded at once.
    await api.call_as("id-cv", ["officer"], "G13", name="Nguyễn Văn Chuyên", username="cv.g12")
    moved = await mongo_db[STAFF].find_one({"_id": "id-cv"})
    assert moved is not None and moved["unit"] == "G13"

    # Intake's service credential is not a person: not recorded.
    token = api.token("intake-service", ["result_reader"], None)
    await api.get("/api/v1/results/65f0a1b2c3d4e5f6a7b8c9d0", token)
    assert await mongo_db[STAFF].find_one({"_id": "intake-service"}) is None


async def test_the_staff_list_is_the_units_officers(api: Api) -> None:
    await api.call_as("id-b", ["officer"], "G12", name="Bùi Văn B", username="b.g12")
    await api.call_as("id-a", ["officer", "unit_head"], "G12", name="An")  # no username
    await api.call_as("id-c", ["officer"], "G13", name="Cao C", username="c.g13")  # another unit
    await api.call_as("id-h", ["unit_head"], "G12", name="Hà Trưởng", username="ld.g12")
    await api.call_as("id-q", ["admin"], None, name="Quản Trị", username="quantri")

    head = api.token("id-h", ["unit_head"], "G12", name="Hà Trưởng", username="ld.g12")
    listed = await api.get("/api/v1/staff", head)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [(o["subject"], o["name"], o["username"], o["unit"]) for o in body] == [
        ("id-a", "An", None, "G12"),
        ("id-b", "Bùi Văn B", "b.g12", "G12"),
    ]
    assert all(datetime.fromisoformat(o["last_seen"]) for o in body)
    assert set(body[0]) == {"subject", "name", "username", "unit", "last_seen"}
    # Naming its own unit is the same; another unit is refused.
    assert (await api.get("/api/v1/staff?unit=G12", head)).json() == body
    other = await api.get("/api/v1/staff?unit=G13", head)
    assert other.status_code == 403
    assert other.headers["content-type"].startswith("application/problem+json")


async def test_only_unit_heads_and_administrators_may_list(api: Api) -> None:
    await api.call_as("id-c", ["officer"], "G13", name="Cao C", username="c.g13")
    officer = api.token("id-o", ["officer"], "G12")
    refused = await api.get("/api/v1/staff", officer)
    assert refused.status_code == 403
    assert refused.json()["status"] == 403
    counter = api.token("id-m", ["counter_officer"], "G12")
    assert (await api.get("/api/v1/staff", counter)).status_code == 403
    assert (await api.client.get("/api/v1/staff")).status_code == 401

    admin = api.token("id-q", ["admin"], None)
    listed = await api.get("/api/v1/staff?unit=G13", admin)
    assert listed.status_code == 200, listed.text
    assert [o["subject"] for o in listed.json()] == ["id-c"]
    assert (await api.get("/api/v1/staff?unit=G99", admin)).json() == []
    # An administrator without a unit names one.
    unnamed = await api.get("/api/v1/staff", admin)
    assert unnamed.status_code == 422 and unnamed.json()["status"] == 422


# --- the in-memory memo, without a database ----------------------------------------------------


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail = fail

    async def record(self, **fields: Any) -> None:
        if self.fail:
            raise ConnectionError("database down")
        self.records.append(fields)


def staff(subject: str, unit: str = "G12") -> Staff:
    return Staff(subject=subject, name=subject.upper(), unit=unit, roles=frozenset({Role.officer}))


async def test_a_member_is_written_at_most_once_per_period_and_the_memo_is_bounded() -> None:
    now = [datetime(2026, 12, 10, 8, tzinfo=UTC)]
    store = FakeStore()
    directory = StaffDirectory(
        store,  # type: ignore[arg-type]
        every=timedelta(minutes=10),
        max_remembered=2,
        clock=lambda: now[0],
    )
    asked: list[str] = []

    def username() -> str:
        asked.append("read")
        return "cv"

    await directory.seen(staff("a"), username)
    await directory.seen(staff("a"), username)
    now[0] += timedelta(minutes=9)
    await directory.seen(staff("a"), username)
    assert len(store.records) == 1 and asked == ["read"]  # the token is read only to write
    now[0] += timedelta(minutes=2)
    await directory.seen(staff("a"), username)
    assert len(store.records) == 2

    # At most `max_remembered` subjects: the oldest is forgotten (and written again next time).
    await directory.seen(staff("b"), username)
    await directory.seen(staff("c"), username)
    assert len(store.records) == 4
    await directory.seen(staff("a"), username)
    assert len(store.records) == 5
    await directory.seen(staff("c"), username)
    assert len(store.records) == 5


async def test_a_failed_write_does_not_fail_the_request_and_is_tried_again() -> None:
    store = FakeStore(fail=True)
    directory = StaffDirectory(store)  # type: ignore[arg-type]
    await directory.seen(staff("a"), lambda: None)  # no exception
    store.fail = False
    await directory.seen(staff("a"), lambda: None)
    assert [r["subject"] for r in store.records] == ["a"]


def test_the_store_declares_its_unit_index() -> None:
    from services.processing.adapters.staff import INDEXES

    assert [list(index.document["key"]) for index in INDEXES[STAFF]] == [["unit"]]
    assert StaffStore.members_of.__doc__


async def test_an_assignment_and_the_history_carry_names_not_only_ids(
    api: Api, mongo_db: Any
) -> None:
    case = document(1, "G12", Channel.COUNTER, DossierState.IN_PROCESSING)
    await mongo_db[CASES].insert_one(case)
    await api.call_as("id-cv", ["officer"], "G12", name="Nguyễn Văn Chuyên", username="cv.g12")
    head = api.token("id-ld", ["unit_head"], "G12", name="Trần Thị Lãnh Đạo")

    answer = await api.client.post(
        f"/api/v1/cases/{case['_id']}/assign",
        json={"assignee": "id-cv"},
        headers={"Authorization": f"Bearer {head}"},
    )

    assert answer.status_code == 200, answer.text
    detail = answer.json()
    assert detail["assignee"] == "id-cv" and detail["assignee_name"] == "Nguyễn Văn Chuyên"
    step = detail["history"][-1]
    assert step["actor"] == "id-ld" and step["actor_name"] == "Trần Thị Lãnh Đạo"
    assert step["note"] == "Giao cho Nguyễn Văn Chuyên"

    # Someone the directory does not know yet is assigned by id (shown as such).
    unknown = await api.client.post(
        f"/api/v1/cases/{case['_id']}/assign",
        json={"assignee": "id-new"},
        headers={"Authorization": f"Bearer {head}"},
    )
    assert unknown.status_code == 200, unknown.text
    assert unknown.json()["assignee_name"] is None
    assert unknown.json()["history"][-1]["note"] == "Giao cho id-new"
