"""The unit head's assignment form offers the officers of the case's unit as processing lists them
(`GET /api/v1/staff`, asked with the head's own token: processing records the staff who call it,
see tests/integration/processing/test_staff_directory.py); the portal keeps no directory of its
own. An empty, refused or unreachable list leaves the form asking for a user id; processing still
decides on the value sent."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from services.portal.main import create_app
from services.portal.settings import PortalSettings
from services.portal.workspace.views import ACTIONS_BY_PATH, assignee_choices, read_action
from services.processing.adapters.store import CASES, _fields
from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.case import Case
from services.processing.domain.workflow import Rules, refresh
from shared.contracts.events import Channel, DossierState
from shared.runtime.auth import DevIssuer
from tests.portal.workspace.test_pages import (
    CODE,
    ISSUER,
    PORTAL,
    Intake,
    Processing,
    Provider,
    Workspace,
    csrf,
)
from tests.service_harness import processing_on_database

OFFICERS = [
    {
        "subject": "id-an",
        "name": "An",
        "username": "cv.an",
        "unit": "SHTT",
        "last_seen": "2026-12-10T03:00:00Z",
    },
    {
        "subject": "id-b",
        "name": "Bùi Văn B",
        "username": None,
        "unit": "SHTT",
        "last_seen": "2026-12-09T03:00:00Z",
    },
]


def test_the_choices_are_processings_officers_of_the_unit_and_the_current_assignee() -> None:
    listed = [*OFFICERS, {**OFFICERS[0], "subject": "id-c", "name": "Cao C", "unit": "TDC"}]
    assert assignee_choices(listed, "SHTT", None) == (
        ("id-an", "An (cv.an)"),
        ("id-b", "Bùi Văn B"),
    )
    # The current assignee is marked, and kept (first) even when no longer listed.
    assert assignee_choices(listed, "SHTT", "id-b")[1] == (
        "id-b",
        "Bùi Văn B – đang được phân công",
    )
    gone = assignee_choices(listed, "SHTT", "id-gone")
    assert gone[0] == ("id-gone", "id-gone – đang được phân công") and len(gone) == 3
    # A name-less entry shows its user name, else its subject.
    assert assignee_choices([{"subject": "id-x", "unit": "SHTT"}], "SHTT", None) == (
        ("id-x", "id-x"),
    )


def test_a_forced_assignee_goes_to_processing_which_decides() -> None:
    assign = ACTIONS_BY_PATH["assign"]
    entered = read_action(assign, {"assignee": "id-of-another-unit"})
    assert entered.body == {"assignee": "id-of-another-unit", "note": None} and not entered.errors
    assert read_action(assign, {"assignee": ""}).errors
    assert read_action(assign, {"assignee": "x" * 101}).errors


@dataclass
class ProcessingWithStaff(Processing):
    """The stand-in processing, answering `GET /api/v1/staff` too (or refusing it)."""

    officers: list[dict[str, Any]] = field(default_factory=lambda: list(OFFICERS))
    staff_status: int = 200
    staff_unreachable: bool = False
    staff_asked: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.port not in (8001, 8004) and request.url.path == "/api/v1/staff":
            self.staff_asked.append(
                (request.headers.get("authorization", ""), dict(request.url.params))
            )
            if self.staff_unreachable:
                raise httpx.ConnectError("connection refused", request=request)
            if self.staff_status != 200:
                return httpx.Response(
                    self.staff_status, json={"title": "refused", "status": self.staff_status}
                )
            return httpx.Response(200, json=self.officers)
        return super().handle(request)


@pytest.fixture
async def workspace() -> AsyncIterator[Workspace]:
    provider, processing = Provider(), ProcessingWithStaff()
    app = create_app(
        PortalSettings(oidc_issuer_url=ISSUER, oidc_redirect_base_url=PORTAL),
        processing_transport=httpx.MockTransport(processing.handle),
        intake_transport=httpx.MockTransport(processing.intake.handle),
        provider_transport=httpx.MockTransport(provider.handle),
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PORTAL)
    async with client:
        yield Workspace(client, provider, processing)


def assign_options(page: str) -> list[str]:
    select = re.search(
        r'<select id="assign-assignee" name="assignee"[^>]*>(.*?)</select>', page, re.S
    )
    assert select, page
    return re.findall(r'<option value="([^"]*)"', select.group(1))


TYPED = '<input id="assign-assignee" name="assignee" type="text"'


async def test_the_form_offers_processings_officers_asked_with_the_heads_token(
    workspace: Workspace,
) -> None:
    processing: ProcessingWithStaff = workspace.processing  # type: ignore[assignment]
    assert (await workspace.sign_in("ld.shtt")).status_code == 303
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 200
    assert assign_options(page.text) == ["", "id-an", "id-b"]
    assert ">An (cv.an)</option>" in page.text and TYPED not in page.text
    assert '<label for="assign-assignee">Cán bộ được phân công' in page.text
    # Asked of processing for the case's unit, with the head's own access token.
    token, params = processing.staff_asked[-1]
    assert params == {"unit": "SHTT"} and token == processing.tokens[-1]
    assert token.startswith("Bearer access-")

    # A value not offered (forced) still goes to processing: its check is the authorisation.
    forced = await workspace.client.post(
        f"/can-bo/ho-so/{CODE}/assign",
        data={"csrf_token": csrf(page.text), "assignee": "id-of-another-unit"},
    )
    assert forced.status_code == 303
    assert processing.acted[-1][:2] == ("assign", {"assignee": "id-of-another-unit", "note": None})


async def test_an_officer_without_the_assign_form_does_not_ask(workspace: Workspace) -> None:
    processing: ProcessingWithStaff = workspace.processing  # type: ignore[assignment]
    await workspace.sign_in("cv.shtt")
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 200 and "assign-assignee" not in page.text
    assert processing.staff_asked == []


@pytest.mark.parametrize("failure", ["empty", 403, 503, "unreachable"])
async def test_without_processings_list_the_form_asks_for_the_user_id(
    workspace: Workspace, failure: Any
) -> None:
    processing: ProcessingWithStaff = workspace.processing  # type: ignore[assignment]
    if failure == "empty":
        processing.officers = []
    elif failure == "unreachable":
        processing.staff_unreachable = True
    else:
        processing.staff_status = failure
    await workspace.sign_in("ld.shtt")
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 200, page.text  # the page itself is not affected
    assert TYPED in page.text
    assert "Mã người dùng của cán bộ" in page.text
    # The typed id is sent as it is; processing decides.
    sent = await workspace.client.post(
        f"/can-bo/ho-so/{CODE}/assign",
        data={"csrf_token": csrf(page.text), "assignee": "id-typed"},
    )
    assert sent.status_code == 303
    assert processing.acted[-1][:2] == ("assign", {"assignee": "id-typed", "note": None})


def test_the_portal_holds_no_database() -> None:
    settings = PortalSettings()
    assert not any("mongo" in name for name in type(settings).model_fields)


# --- with the real processing (in process, on the real MongoDB-protocol server) ----------------


@dataclass
class SigningProvider(Provider):
    """The stand-in provider, whose access tokens processing verifies (the development issuer's
    keys): the same subject, name, unit and roles as its ID tokens."""

    issuer: DevIssuer | None = None

    def tokens(self, nonce: str | None, username: str, id_token: bool = True) -> dict[str, Any]:
        answer = super().tokens(nonce, username, id_token)
        assert self.issuer is not None and id_token
        claims = jwt.decode(answer["id_token"], options={"verify_signature": False})
        answer["access_token"] = self.issuer.mint(
            claims["sub"], claims["roles"], claims["unit"], name=username
        )
        return answer


def stored_case() -> dict[str, Any]:
    case = Case(
        code=CODE,
        procedure_code="1.004940",
        procedure_name="Đăng ký nhãn hiệu",
        unit_code="SHTT",
        level=4,
        channel=Channel.ONLINE,
        state=DossierState.IN_PROCESSING,
        applicant_name="Nguyễn Văn An",
        submitted_at=datetime.now(UTC) - timedelta(days=2),
        received_at=datetime.now(UTC) - timedelta(days=1),
        due_at=datetime.now(UTC) + timedelta(days=10),
    )
    case = refresh(case, Rules(WorkingCalendar(), warning_fractions=()))
    return {"_id": case.code, **_fields(case), "version": 1, "history": []}


@pytest.mark.infra
async def test_processing_lists_the_officers_who_called_it_and_the_form_offers_them(
    mongo_url: str, mongo_db: Any, tmp_path: Path
) -> None:
    issuer = DevIssuer(tmp_path / "issuer")
    processing_app = await processing_on_database(mongo_url, mongo_db.name, issuer)
    await mongo_db[CASES].insert_one(stored_case())
    real = httpx.ASGITransport(app=processing_app)
    intake = Intake()

    async def route(request: httpx.Request) -> httpx.Response:
        if request.url.port == 8001:
            return intake.handle(request)
        await request.aread()
        return await real.handle_async_request(request)

    provider = SigningProvider(issuer=issuer)
    portal = create_app(
        PortalSettings(oidc_issuer_url=ISSUER, oidc_redirect_base_url=PORTAL),
        processing_transport=httpx.MockTransport(route),
        intake_transport=httpx.MockTransport(intake.handle),
        provider_transport=httpx.MockTransport(provider.handle),
    )

    async def browser(username: str) -> Workspace:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=portal), base_url=PORTAL)
        ws = Workspace(client, provider, Processing())
        assert (await ws.sign_in(username)).status_code == 303
        return ws

    # Before any officer has worked in processing, the form asks for a user id ...
    head = await browser("ld.tdc")  # a head of another unit: no form, no list asked
    assert "assign-assignee" not in (await head.client.get(f"/can-bo/ho-so/{CODE}")).text
    await head.client.aclose()
    # ... officers of SHTT and of TDC open their worklists (processing records them) ...
    for username in ("cv.shtt", "cv.tdc"):
        officer = await browser(username)
        assert (await officer.client.get("/can-bo")).status_code == 200
        await officer.client.aclose()
    # ... and SHTT's head is offered SHTT's officers (and themself: an officer too).
    head = await browser("ld.shtt")
    page = await head.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 200, page.text
    assert assign_options(page.text) == ["", "id-cv.shtt", "id-ld.shtt"]
    chosen = await head.client.post(
        f"/can-bo/ho-so/{CODE}/assign",
        data={"csrf_token": csrf(page.text), "assignee": "id-cv.shtt"},
    )
    assert chosen.status_code == 303, chosen.text
    stored = await mongo_db[CASES].find_one({"_id": CODE})
    assert stored is not None and stored["assignee"] == "id-cv.shtt"
    page = await head.client.get(f"/can-bo/ho-so/{CODE}")
    assert "cv.shtt – đang được phân công" in page.text
    await head.client.aclose()
