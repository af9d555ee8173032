"""The worklist's 50% / 80% badges are processing's warnings, counted in working time: the real
processing API lists a case whose 50% warning the deadline scanner emitted with that warning
(`warnings_emitted` on the summary), and the workspace's worklist page, calling that API, shows
the badge."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from services.portal.main import create_app as create_portal
from services.portal.settings import PortalSettings
from services.processing.domain.workflow import alert_schedule
from services.processing.service.scanner import DeadlineScanner
from shared.contracts.events import StepAction
from tests.factories import dossier_code
from tests.integration.processing.conftest import Service
from tests.integration.processing.test_deadline_scanner import in_processing_case
from tests.portal.workspace.test_pages import ISSUER, PORTAL, Provider, Workspace


async def test_a_case_past_half_its_working_time_has_the_50_badge_on_the_worklist(
    service: Service,
) -> None:
    code = dossier_code(51)
    received = datetime.now(UTC)
    await in_processing_case(service.processing, code, received)
    case = await service.processing.store.load(code)
    assert case is not None
    schedule = dict(alert_schedule(case.case, service.processing.rules))
    fifty = schedule[StepAction.DEADLINE_WARNING_50]
    eighty = schedule[StepAction.DEADLINE_WARNING_80]
    # The scanner runs between the two thresholds (in working time, by processing's calendar).
    assert await DeadlineScanner(service.processing, "test").scan_once(fifty + (eighty - fifty) / 2)

    officer = service.token("o-1", "officer")
    listed = (await service.client.get("/api/v1/cases", headers=officer)).json()["items"]
    assert [(i["code"], i["warnings_emitted"], i["overdue"]) for i in listed] == [
        (code, ["deadline_warning_50"], False)
    ]

    # The workspace's worklist, calling the real processing API (the stand-in provider's token
    # swapped for one processing trusts: the page's logic is the subject).
    processing = httpx.ASGITransport(app=service.app)

    async def forward(request: httpx.Request) -> httpx.Response:
        request.headers["Authorization"] = officer["Authorization"]
        return await processing.handle_async_request(request)

    provider = Provider()
    app = create_portal(
        PortalSettings(oidc_issuer_url=ISSUER, oidc_redirect_base_url=PORTAL),
        processing_transport=httpx.MockTransport(forward),
        provider_transport=httpx.MockTransport(provider.handle),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PORTAL) as client:
        workspace = Workspace(client, provider, None)  # type: ignore[arg-type]
        await workspace.sign_in()
        page = await client.get("/can-bo")
    assert page.status_code == 200, page.text
    row = page.text[page.text.index(code) :]
    row = row[: row.index("</tr>")]
    assert 'class="badge deadline-50">Đã dùng 50% thời gian' in row
    assert "80%" not in row and "Quá hạn" not in row
