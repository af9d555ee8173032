"""The administrator's pages in a real browser against the real stack, Keycloak included: the
realm's administrator (`quantri`) signs in at the provider's login page, changes a procedure's
fee (intake's catalogue then has it), meets intake's refusal of a zero processing time, loses
no change to a second administrator's save (two tabs), and adds
a make-up working day to processing's calendar; an officer has no link and gets 403. Each page
gets the axe scan and screenshots."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.intake_samples import TRADEMARK
from tests.portal.browser.test_journeys import audit
from tests.portal.workspace.stack import PASSWORD, WorkspaceStack

pytestmark = [pytest.mark.infra, pytest.mark.keycloak, pytest.mark.timeout(900)]


async def sign_in_at(page, stack: WorkspaceStack, path: str, username: str) -> None:
    """Open a workspace page signed out: the provider's login page, then back to it."""
    await page.goto(path)
    await page.wait_for_url(re.compile(re.escape(stack.issuer) + r"/protocol/openid-connect/auth"))
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#kc-login")
    await page.wait_for_url(re.compile(re.escape(stack.portal_url + path)))


async def test_the_administrator_edits_the_catalogue_and_the_calendar(
    new_browser, workspace_stack: WorkspaceStack, screenshots: Path
) -> None:
    stack = workspace_stack
    async with httpx.AsyncClient(timeout=30) as client:
        listed = await client.get(f"{stack.intake_url}/api/v1/procedures", params={"limit": 50})
    # Not the trademark procedure the other browser tests submit dossiers for.
    procedure = next(p for p in listed.json()["items"] if p["code"] != TRADEMARK)
    code, fees = procedure["code"], len(procedure["fees"])

    page = await (await new_browser()).new_page()
    await sign_in_at(page, stack, "/can-bo/quan-tri/thu-tuc", "quantri")
    navigation = await page.inner_text("header.site nav")
    assert "Danh mục thủ tục" in navigation and "Lịch làm việc" in navigation
    assert "Quản trị hệ thống" in navigation
    await audit(page, "can-bo-20-quan-tri-danh-muc", screenshots)

    await page.click(f"a[href='/can-bo/quan-tri/thu-tuc/{code}']")
    await page.wait_for_url(f"**/can-bo/quan-tri/thu-tuc/{code}")
    assert code in await page.inner_text("h1")
    await audit(page, "can-bo-21-quan-tri-thu-tuc", screenshots)

    await page.fill(f"#fee_name_{fees}", "Phí thẩm định hồ sơ")
    await page.fill(f"#fee_amount_{fees}", "275.000")
    await page.click("button:has-text('Lưu thủ tục')")
    await page.wait_for_url(re.compile(r"\?xong=1$"))
    assert "Đã lưu thủ tục." in await page.inner_text("[role=status]")
    assert await page.input_value(f"#fee_amount_{fees}") == "275000"
    await audit(page, "can-bo-22-quan-tri-da-luu", screenshots)
    async with httpx.AsyncClient(timeout=30) as client:
        shown = await client.get(f"{stack.intake_url}/api/v1/procedures/{code}")
    assert {"name": "Phí thẩm định hồ sơ", "amount_vnd": 275000} in shown.json()["fees"]

    # Intake refuses a processing time of zero: said in Vietnamese by the field.
    await page.fill("#time_value", "0")
    await page.click("button:has-text('Lưu thủ tục')")
    await page.wait_for_load_state()
    summary = await page.inner_text(".error-summary")
    assert "Thời hạn giải quyết: Nhập một số lớn hơn 0." in summary
    assert await page.get_attribute("#time_value", "aria-invalid") == "true"
    await audit(page, "can-bo-23-quan-tri-loi", screenshots)

    # Two administrators on the same procedure (two tabs): the second save, made from the version
    # both loaded, stores nothing; the page shows the stored values and what was typed.
    other = await page.context.new_page()
    await other.goto(f"/can-bo/quan-tri/thu-tuc/{code}")
    await page.goto(f"/can-bo/quan-tri/thu-tuc/{code}")
    await other.fill(f"#fee_amount_{fees}", "300.000")
    await other.click("button:has-text('Lưu thủ tục')")
    await other.wait_for_url(re.compile(r"\?xong=1$"))
    await page.fill(f"#fee_amount_{fees}", "280.000")
    await page.click("button:has-text('Lưu thủ tục')")
    await page.wait_for_load_state()
    assert "vừa được một quản trị viên khác thay đổi" in await page.inner_text("main")
    assert await page.input_value(f"#fee_amount_{fees}") == "300000"  # reloaded: the stored one
    unsaved = await page.inner_text("#chua-luu")
    assert "300.000 đồng" in unsaved and "280.000 đồng" in unsaved, unsaved
    await audit(page, "can-bo-25-quan-tri-xung-dot", screenshots)
    async with httpx.AsyncClient(timeout=30) as client:
        kept = await client.get(f"{stack.intake_url}/api/v1/procedures/{code}")
    assert {"name": "Phí thẩm định hồ sơ", "amount_vnd": 300000} in kept.json()["fees"]

    # A make-up working day, far ahead so no other test's due date meets it.
    await page.click("header.site a:has-text('Lịch làm việc')")
    await page.wait_for_url("**/can-bo/quan-tri/lich-lam-viec")
    await page.goto("/can-bo/quan-tri/lich-lam-viec?nam=2099")
    await page.fill("#day", "2099-01-03")
    await page.check("#working_1")
    await page.fill("#reason", "Thông báo mẫu: làm bù ngày 02/01/2099")
    await page.click("button:has-text('Thêm vào lịch')")
    await page.wait_for_url(re.compile(r"\?nam=2099&xong=1$"))
    table = await page.inner_text("table.calendar-changes")
    assert "03/01/2099" in table and "Ngày làm việc bù" in table
    await audit(page, "can-bo-24-quan-tri-lich", screenshots)
    async with httpx.AsyncClient(timeout=30) as client:
        changes = await client.get(
            f"{stack.processing_url}/api/v1/calendar/changes",
            headers={"Authorization": f"Bearer {await stack.token('quantri')}"},
        )
    assert {"day": "2099-01-03", "working": True} in [
        {"day": c["day"], "working": c["working"]} for c in changes.json()
    ]

    # An officer: no link, and the page refused.
    officer = await (await new_browser()).new_page()
    # Not through the worklist: its counts are cached for a while, other tests read them.
    await sign_in_at(officer, stack, "/can-bo/bao-cao", "cv.shtt")
    assert "Danh mục thủ tục" not in await officer.inner_text("header.site nav")
    response = await officer.goto("/can-bo/quan-tri/thu-tuc")
    assert response is not None and response.status == 403
    assert await officer.inner_text("h1") == "Không có quyền truy cập"
