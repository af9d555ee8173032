"""Two journeys of the officers' workspace in a real browser against the real stack, the provider
included: a supplement round trip with the citizens' portal (the officer asks from the dossier's
page, the citizen sends it from the tracking page, the officer sees it back) and an expired staff
session (sign in again, with a message; the form posted with it changes nothing). Each page gets
the axe scan and a screenshot."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.intake_samples import PDF, dossier_json, multipart, trademark_files
from tests.portal.browser.test_journeys import audit
from tests.portal.workspace.stack import (
    PASSWORD,
    WorkspaceStack,
    keycloak_issuer,
    registered_redirects,
    running_workspace,
)
from tests.portal.workspace.test_browser import case_in_state, eventually, sign_in

pytestmark = [pytest.mark.infra, pytest.mark.keycloak, pytest.mark.timeout(900)]

# The short-lived sessions' stack: a staff session ends after this long without a request.
IDLE_SECONDS = 6


async def submitted_online(stack: WorkspaceStack) -> tuple[str, str]:
    """An online dossier sent to intake's API, with the tracking secret of its receipt."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{stack.intake_url}/api/v1/dossiers", **multipart(dossier_json(), trademark_files())
        )
    assert response.status_code == 201, response.text
    return response.json()["dossier_code"], response.json()["tracking_secret"]


async def case_state(stack: WorkspaceStack, code: str) -> int:
    token = await stack.token("cv.shtt")
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(
            f"{stack.processing_url}/api/v1/cases/{code}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    state: int = response.json()["state"]
    return state


async def sign_in_again(
    page, stack: WorkspaceStack, username: str, landing: str = "/can-bo"
) -> None:
    """From the workspace's sign-in page: the provider asks for the password, or (its own
    session still alive) sends the browser straight back, to `landing`."""
    await page.click("a:has-text('Đăng nhập')")
    back = re.escape(stack.portal_url + landing) + "$"
    await page.wait_for_url(
        re.compile(re.escape(stack.issuer) + r"/protocol/openid-connect/auth|" + back)
    )
    if page.url.startswith(stack.issuer):
        await page.fill("#username", username)
        await page.fill("#password", PASSWORD)
        await page.click("#kc-login")
        await page.wait_for_url(re.compile(back))


# --- a supplement round trip ---------------------------------------------------------------------


async def test_a_supplement_round_trip_with_the_citizens_portal(
    new_browser, workspace_stack: WorkspaceStack, screenshots: Path, tmp_path: Path
) -> None:
    stack = workspace_stack
    code, secret = await submitted_online(stack)
    await case_in_state(stack, code, 1)

    # The officer receives the dossier, then asks for a document again from its page.
    officer = await (await new_browser()).new_page()
    await sign_in(officer, stack, "cv.shtt")
    await officer.goto(f"/can-bo/ho-so/{code}")
    await officer.fill("#receive-note", "Hồ sơ hợp lệ")
    await officer.click("button:has-text('Tiếp nhận hồ sơ')")
    await officer.wait_for_url(re.compile(r"\?xong=receive$"))
    assert "Đang xử lý" in await officer.inner_text(".status-box")
    await officer.fill("#request-supplement-documents", "to_khai")
    await officer.fill("#request-supplement-reason", "Tờ khai chưa có chữ ký số của người nộp")
    await officer.click("button:has-text('Yêu cầu bổ sung hồ sơ')")
    await officer.wait_for_url(re.compile(r"\?xong=request-supplement$"))
    assert "Đã gửi yêu cầu bổ sung." in await officer.inner_text("[role=status]")
    main = await officer.inner_text("main")
    assert "Giấy tờ đã yêu cầu bổ sung" in main and "to_khai" in main
    assert "Tờ khai chưa có chữ ký số" in await officer.inner_text("ol.timeline")
    await audit(officer, "can-bo-20-yeu-cau-bo-sung", screenshots)
    await case_in_state(stack, code, 5)

    # The citizen tracks the dossier on the portal (code and secret) and sends the supplement.
    citizen = await (await new_browser()).new_page()
    await citizen.goto("/tra-cuu")
    await audit(citizen, "can-bo-21-cong-dan-tra-cuu", screenshots)
    await citizen.fill("#code", code)
    await citizen.fill("#secret", secret)
    await citizen.click("button:has-text('Tra cứu')")
    await citizen.wait_for_url(f"**/ho-so/{code}")

    async def supplement_form_shown() -> bool:
        # Intake learns of the request from processing's events: reload until it has.
        if await citizen.locator("#h-bo-sung").count():
            return True
        await citizen.reload()
        return False

    await eventually(supplement_form_shown)
    assert await citizen.locator("#document_to_khai").count() == 1
    assert await citizen.locator("#document_mau_nhan_hieu").count() == 0  # not asked for
    await audit(citizen, "can-bo-22-cong-dan-yeu-cau-bo-sung", screenshots)
    signed = tmp_path / "tờ khai đã ký.pdf"
    signed.write_bytes(PDF)
    await citizen.set_input_files("#document_to_khai", str(signed))
    await citizen.fill("#note", "Tờ khai đã ký số")
    await citizen.click("button:has-text('Gửi giấy tờ bổ sung')")
    await citizen.wait_for_url(re.compile(r"\?xong=bo-sung$"))
    assert "Đã gửi giấy tờ bổ sung" in await citizen.inner_text("[role=status]")
    await audit(citizen, "can-bo-23-cong-dan-da-bo-sung", screenshots)

    # Back at the unit: the dossier is in processing again, with the supplement.
    await case_in_state(stack, code, 4)
    await officer.goto(f"/can-bo/ho-so/{code}")
    assert "Đang xử lý" in await officer.inner_text(".status-box")
    history = await officer.inner_text("ol.timeline")
    assert "Đã nhận hồ sơ bổ sung" in history
    assert "tờ khai đã ký.pdf" in await officer.inner_text("ul.documents")
    await audit(officer, "can-bo-24-da-nhan-bo-sung", screenshots)


# --- an expired session --------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def short_sessions_stack(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkspaceStack]:
    """A stack of its own whose portal ends a staff session after `IDLE_SECONDS` idle."""
    issuer = await asyncio.to_thread(keycloak_issuer)
    folder = tmp_path_factory.mktemp("workspace-short-sessions")
    settings = {"WORKSPACE_SESSION_IDLE_SECONDS": str(IDLE_SECONDS)}
    async with running_workspace(
        kafka_bootstrap, mongo_url, folder, issuer, portal_env=settings
    ) as stack:
        async with registered_redirects(issuer, stack.portal_url):
            yield stack


async def idle_out(last_request: float) -> None:
    """An idle timeout is waited out: until just past it since the last request."""
    await asyncio.sleep(max(0.0, last_request + IDLE_SECONDS + 1.5 - time.monotonic()))


async def test_an_expired_session_signs_in_again_and_its_form_changes_nothing(
    browser, short_sessions_stack: WorkspaceStack, screenshots: Path
) -> None:
    stack = short_sessions_stack
    code, _ = await submitted_online(stack)
    await case_in_state(stack, code, 1)
    context = await browser.new_context(
        base_url=stack.portal_url, viewport={"width": 1280, "height": 800}, locale="vi-VN"
    )
    context.set_default_timeout(30_000)
    try:
        page = await context.new_page()
        await sign_in(page, stack, "cv.shtt")
        await page.goto(f"/can-bo/ho-so/{code}")
        last_request = time.monotonic()
        await page.fill("#receive-note", "Gửi sau khi phiên hết hạn")
        await audit(page, "can-bo-30-ho-so-truoc-het-han", screenshots)

        # The form posted after the session expired: the sign-in page says why ...
        await idle_out(last_request)
        await page.click("button:has-text('Tiếp nhận hồ sơ')")
        expired = re.escape(f"/can-bo?phien=het-han&tiep=%2Fcan-bo%2Fho-so%2F{code}") + "$"
        await page.wait_for_url(re.compile(expired))
        assert await page.locator("h1").inner_text() == "Đăng nhập không gian làm việc cán bộ"
        notice = await page.inner_text("[role=status]")
        assert "Phiên làm việc đã hết hạn" in notice and "chưa được thực hiện" in notice
        assert await page.locator("a:has-text('Đăng nhập')").count() == 1
        await audit(page, "can-bo-31-phien-het-han", screenshots)
        # ... and nothing reached processing: the dossier still waits for intake's check.
        assert await case_state(stack, code) == 1
        history = await page.request.get(f"/can-bo/ho-so/{code}", max_redirects=0)
        assert history.status == 303  # the expired session's cookie is gone as well

        # Signed in again, the officer is back on the dossier (not the worklist); the expired
        # form was not sent again.
        await sign_in_again(page, stack, "cv.shtt", landing=f"/can-bo/ho-so/{code}")
        last_request = time.monotonic()
        assert await page.locator("h1").inner_text() == f"Hồ sơ {code}"
        assert "Gửi sau khi phiên hết hạn" not in await page.inner_text("main")

        # A page asked for after the session expired: the same message.
        await idle_out(last_request)
        await page.goto(f"/can-bo/ho-so/{code}")
        await page.wait_for_url(re.compile(expired))
        assert "Phiên làm việc đã hết hạn" in await page.inner_text("[role=status]")

        await sign_in_again(page, stack, "cv.shtt", landing=f"/can-bo/ho-so/{code}")
        await page.fill("#receive-note", "Hồ sơ hợp lệ")
        await page.click("button:has-text('Tiếp nhận hồ sơ')")
        await page.wait_for_url(re.compile(r"\?xong=receive$"))
        assert "Đang xử lý" in await page.inner_text(".status-box")
        await audit(page, "can-bo-32-sau-dang-nhap-lai", screenshots)
        timeline = await page.inner_text("ol.timeline")
        assert "Gửi sau khi phiên hết hạn" not in timeline  # the expired form never applied
    finally:
        await context.close()
