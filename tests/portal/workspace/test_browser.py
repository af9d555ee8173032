"""The officers' workspace in a real browser against the real stack, the provider included:
sign in through Keycloak's own login page, the unit's worklist, a dossier received and a paper
dossier moved to processing from their pages, a conflicting second submission, unit isolation by
URL, logout at the provider. Each workspace page gets the axe scan and screenshots."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.intake_samples import PDF, PNG, TRADEMARK, dossier_json, multipart, trademark_files
from tests.portal.browser.test_journeys import audit
from tests.portal.workspace.stack import PASSWORD, WorkspaceStack

pytestmark = [pytest.mark.infra, pytest.mark.keycloak, pytest.mark.timeout(900)]


async def eventually(probe: Callable[[], Awaitable[Any]], within: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if found := await probe():
            return found
        assert asyncio.get_running_loop().time() < deadline, f"{probe.__name__} never came true"
        await asyncio.sleep(0.25)


async def online_dossier(stack: WorkspaceStack) -> str:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{stack.intake_url}/api/v1/dossiers", **multipart(dossier_json(), trademark_files())
        )
    assert response.status_code == 201, response.text
    code: str = response.json()["dossier_code"]
    return code


async def counter_dossier(stack: WorkspaceStack) -> str:
    """A paper dossier recorded at the counter by the unit's counter officer (state 2)."""
    token = await stack.token("mc.shtt")
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{stack.intake_url}/api/v1/counter/dossiers",
            **multipart(dossier_json(channel=1), trademark_files()),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 201, response.text
    code: str = response.json()["dossier_code"]
    return code


async def case_in_state(stack: WorkspaceStack, code: str, state: int) -> None:
    token = await stack.token("cv.shtt")

    async def reached() -> bool:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(
                f"{stack.processing_url}/api/v1/cases/{code}",
                headers={"Authorization": f"Bearer {token}"},
            )
        return response.status_code == 200 and response.json()["state"] == state

    await eventually(reached)


async def sign_in(page, stack: WorkspaceStack, username: str) -> None:
    """Through the provider's real login page."""
    await page.goto("/can-bo")
    await page.click("a:has-text('Đăng nhập')")
    await page.wait_for_url(re.compile(re.escape(stack.issuer) + r"/protocol/openid-connect/auth"))
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#kc-login")
    await page.wait_for_url(re.compile(re.escape(stack.portal_url) + r"/can-bo"))


async def test_officer_signs_in_works_a_dossier_and_logs_out(
    new_browser, workspace_stack: WorkspaceStack, screenshots: Path
) -> None:
    stack = workspace_stack
    online = await online_dossier(stack)
    paper = await counter_dossier(stack)
    await case_in_state(stack, online, 1)
    await case_in_state(stack, paper, 2)

    page = await (await new_browser()).new_page()
    await page.goto("/can-bo")
    assert await page.locator("h1").inner_text() == "Đăng nhập không gian làm việc cán bộ"
    await audit(page, "can-bo-01-dang-nhap", screenshots)

    await sign_in(page, stack, "cv.shtt")
    header = await page.inner_text("header.site")
    assert "Đơn vị SHTT" in header and "Chuyên viên" in header
    rows = page.locator("table.worklist tbody tr")
    codes = await page.locator("table.worklist tbody tr td:first-child").all_inner_texts()
    assert online in codes and paper in codes
    # Online dossiers first (Decision 4094), then by due date: processing's order.
    assert codes.index(online) < codes.index(paper)
    assert await rows.count() == len(codes)
    counts = await page.inner_text("dl.counts")
    assert "Đã nộp trực tuyến, chờ tiếp nhận" in counts and "Đã tiếp nhận" in counts
    await audit(page, "can-bo-02-danh-sach", screenshots)

    # Filters: state, then channel.
    await page.goto("/can-bo?trang-thai=1")
    codes = await page.locator("table.worklist tbody tr td:first-child").all_inner_texts()
    assert online in codes and paper not in codes
    await page.goto("/can-bo?kenh=1")
    codes = await page.locator("table.worklist tbody tr td:first-child").all_inner_texts()
    assert paper in codes and online not in codes
    await audit(page, "can-bo-03-loc", screenshots)

    # Search by code: straight to the dossier.
    await page.goto("/can-bo")
    await page.fill("#ma", online)
    await page.click("button:has-text('Tìm theo mã')")
    await page.wait_for_url(f"**/can-bo/ho-so/{online}")
    assert online in await page.inner_text("h1")
    assert "Đã nộp trực tuyến, chờ tiếp nhận" in await page.inner_text(".status-box")
    # An officer sees neither the unit head's steps nor a form the lifecycle does not allow.
    assert await page.locator("button:has-text('Phê duyệt')").count() == 0
    assert await page.locator("button:has-text('Chuyển xử lý')").count() == 0
    await audit(page, "can-bo-04-ho-so", screenshots)

    # Receive it: an online dossier goes on to processing (1 -> 2 -> 4).
    await page.fill("#receive-note", "Hồ sơ hợp lệ")
    await page.click("button:has-text('Tiếp nhận hồ sơ')")
    await page.wait_for_url(re.compile(r"\?xong=receive$"))
    assert "Đã tiếp nhận hồ sơ." in await page.inner_text("[role=status]")
    assert "Đang xử lý" in await page.inner_text(".status-box")
    history = await page.inner_text("ol.timeline")
    assert "Tiếp nhận" in history and "Hồ sơ hợp lệ" in history
    await audit(page, "can-bo-05-da-tiep-nhan", screenshots)

    # A form's own check: the supplement request needs its documents and reason.
    await page.click("button:has-text('Yêu cầu bổ sung hồ sơ')")
    assert "Vui lòng nhập giấy tờ cần bổ sung" in await page.inner_text(".error-summary")
    await audit(page, "can-bo-06-loi-nhap", screenshots)

    # The paper dossier, open in two tabs: the first starts processing, the second's submission
    # of the same action meets the changed state and says so (never a lost update).
    first = page
    second = await page.context.new_page()
    for tab in (first, second):
        await tab.goto(f"/can-bo/ho-so/{paper}")
    await first.click("button:has-text('Chuyển xử lý')")
    await first.wait_for_url(re.compile(r"\?xong=start-processing$"))
    assert "Đang xử lý" in await first.inner_text(".status-box")
    await second.click("button:has-text('Chuyển xử lý')")
    alert = await second.inner_text(".error-summary")
    assert "hồ sơ vừa được cập nhật" in alert
    assert "Đang xử lý" in await second.inner_text(".status-box")
    await audit(second, "can-bo-07-xung-dot", screenshots)
    await second.close()

    # Logout: here and at the provider, back to the workspace's home.
    await page.click("button:has-text('Đăng xuất')")
    await page.wait_for_url(re.compile(re.escape(stack.portal_url) + r"/can-bo/da-dang-xuat"))
    assert "Bạn đã đăng xuất." in await page.inner_text("[role=status]")
    await audit(page, "can-bo-08-da-dang-xuat", screenshots)
    await page.goto(f"/can-bo/ho-so/{online}")  # the old session is gone ...
    await page.wait_for_url(re.compile(re.escape(stack.issuer)))
    assert await page.locator("#kc-login").count() == 1  # ... and so is the provider's


async def test_an_officer_of_another_unit_is_refused_by_url(
    new_browser, workspace_stack: WorkspaceStack, screenshots: Path
) -> None:
    stack = workspace_stack
    code = await online_dossier(stack)
    await case_in_state(stack, code, 1)
    page = await (await new_browser()).new_page()
    await sign_in(page, stack, "cv.tdc")
    assert "Đơn vị TDC" in await page.inner_text("header.site")
    assert code not in await page.content()  # not on the TDC worklist

    response = await page.goto(f"/can-bo/ho-so/{code}")
    assert response is not None and response.status == 403
    assert await page.locator("h1").inner_text() == "Không có quyền truy cập"
    assert "đơn vị khác" in await page.inner_text("main")
    await audit(page, "can-bo-09-khong-co-quyen", screenshots)

    # Forcing the action by a forged form: processing refuses it as well.
    csrf = await page.request.get("/can-bo")
    assert csrf.ok
    token = re.search(r'name="csrf_token" value="([^"]+)"', await csrf.text())
    assert token
    forced = await page.request.post(
        f"/can-bo/ho-so/{code}/receive", form={"csrf_token": token.group(1), "note": ""}
    )
    assert forced.status == 403
    await case_in_state(stack, code, 1)


async def test_the_counter_desk_records_a_postal_dossier_and_prints_its_receipt(
    new_browser, workspace_stack: WorkspaceStack, screenshots: Path, tmp_path: Path
) -> None:
    stack = workspace_stack
    page = await (await new_browser()).new_page()
    await sign_in(page, stack, "mc.shtt")  # a counter officer's home is the counter desk
    await page.wait_for_url(re.compile(r"/can-bo/mot-cua$"))
    assert "Tiếp nhận tại một cửa" in await page.inner_text("header.site")
    assert await page.locator("a:has-text('Danh sách hồ sơ')").count() == 0
    await audit(page, "can-bo-10-mot-cua", screenshots)

    await page.fill("#thu-tuc", TRADEMARK)
    await page.click("button:has-text('Tiếp tục')")
    await page.wait_for_url(re.compile(r"thu-tuc=1\.004940"))
    # A form sent incomplete: the applicant's and the files' errors, nothing recorded.
    await page.click("button:has-text('Ghi nhận hồ sơ')")
    summary = await page.inner_text(".error-summary")
    assert "Nhập họ và tên người nộp." in summary and "Chọn tệp cho giấy tờ bắt buộc" in summary
    await audit(page, "can-bo-11-mot-cua-loi", screenshots)

    await page.check("#channel_3")
    await page.fill("#applicant_name", "Phạm Văn Bình")
    await page.fill("#applicant_identifier", "001303004567")
    await page.fill("#contact_phone", "0912345678")
    await page.fill("#form_request", "Đăng ký nhãn hiệu Sao Mai")
    form, label = tmp_path / "to-khai.pdf", tmp_path / "mau-nhan.png"
    form.write_bytes(PDF)
    label.write_bytes(PNG)
    await page.set_input_files("#document_to_khai", str(form))
    await page.set_input_files("#document_mau_nhan_hieu", str(label))
    await page.click("button:has-text('Ghi nhận hồ sơ')")
    await page.wait_for_url(re.compile(r"/can-bo/mot-cua/bien-nhan/"))
    code = await page.inner_text("#ma-ho-so")
    assert len(await page.inner_text("#ma-bi-mat")) >= 8
    assert "Bưu chính" in await page.inner_text("main")
    assert await page.locator("figure.qr svg").count() == 1
    await audit(page, "can-bo-12-bien-nhan", screenshots)

    # Recorded at intake with the counter officer's token: processing has the paper case (2).
    await case_in_state(stack, code, 2)


async def test_the_unit_head_reads_the_dossier_issues_the_result_and_reads_the_report(
    new_browser, workspace_stack: WorkspaceStack, screenshots: Path, tmp_path: Path
) -> None:
    stack = workspace_stack
    paper = await counter_dossier(stack)
    await case_in_state(stack, paper, 2)
    page = await (await new_browser()).new_page()
    await sign_in(page, stack, "ld.shtt")
    counts = await page.inner_text("#h-so-luong")
    assert "Hồ sơ đang giải quyết theo trạng thái" in counts
    assert "Đã tiếp nhận" in await page.inner_text("dl.counts")

    await page.goto(f"/can-bo/ho-so/{paper}")
    main = await page.inner_text("main")
    for shown in ("Nguyễn Thị Lan", "lan.nguyen@example.vn", "ten_nhan_hieu", "Sao Mai"):
        assert shown in main
    link = page.locator("ul.documents a").first
    download = await page.request.get(await link.get_attribute("href") or "")
    assert download.ok and download.headers["content-disposition"].startswith("attachment")
    assert (await download.body()).startswith(b"%PDF")

    await page.click("button:has-text('Chuyển xử lý')")
    await page.wait_for_url(re.compile(r"\?xong=start-processing$"))
    assert await page.locator("#issue-result-file").count() == 0  # not before approval

    # The unit's officers who have worked on the platform (here cv.shtt, by opening the
    # worklist: processing notes who calls it) are offered for assignment; another unit's not.
    for username in ("cv.shtt", "cv.tdc"):
        token = await stack.token(username)
        async with httpx.AsyncClient(timeout=30) as client:
            worklist = await client.get(
                f"{stack.processing_url}/api/v1/cases",
                headers={"Authorization": f"Bearer {token}"},
            )
        assert worklist.status_code == 200, worklist.text
    await page.reload()
    offered = await page.locator("#assign-assignee option").all_inner_texts()
    assert any("(cv.shtt)" in label for label in offered), offered
    assert not any("cv.tdc" in label for label in offered), offered
    await page.select_option(
        "#assign-assignee", label=next(label for label in offered if "(cv.shtt)" in label)
    )
    await page.click("button:has-text('Phân công')")
    await page.wait_for_url(re.compile(r"\?xong=assign$"))
    offered = await page.locator("#assign-assignee option").all_inner_texts()
    assigned = next(label for label in offered if "(cv.shtt) – đang được phân công" in label)
    name = assigned.split(" (cv.shtt)")[0]
    assert name and f"Cán bộ được phân công\n{name}" in await page.inner_text("main")
    assert f"Giao cho {name}" in await page.inner_text("main")  # the history names them
    await audit(page, "can-bo-15-phan-cong", screenshots)
    await page.click("button:has-text('Phê duyệt')")
    await page.wait_for_url(re.compile(r"\?xong=approve$"))
    result = tmp_path / "quyet-dinh.pdf"
    result.write_bytes(PDF)
    await page.set_input_files("#issue-result-file", str(result))
    await page.fill("#issue-result-note", "Đã ký số")
    await page.click("button:has-text('Ban hành kết quả')")
    await page.wait_for_url(re.compile(r"\?xong=issue-result$"))
    assert "Đã có kết quả" in await page.inner_text(".status-box")
    assert "quyet-dinh.pdf" in await page.inner_text("main")
    await audit(page, "can-bo-13-da-co-ket-qua", screenshots)

    await page.click("a:has-text('Báo cáo của đơn vị')")
    await page.wait_for_url(re.compile(r"/can-bo/bao-cao"))
    assert "Báo cáo tình hình giải quyết hồ sơ" in await page.inner_text("h1")
    assert await page.locator("figure svg").count() == 1
    await audit(page, "can-bo-14-bao-cao", screenshots)
    csv = await page.request.get(await page.get_attribute("a:has-text('CSV')", "href") or "")
    assert csv.ok and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"].startswith("attachment")


async def test_an_officer_has_neither_the_counter_desk_nor_the_report(
    new_browser, workspace_stack: WorkspaceStack
) -> None:
    page = await (await new_browser()).new_page()
    await sign_in(page, workspace_stack, "cv.shtt")
    assert await page.locator("a:has-text('Báo cáo của đơn vị')").count() == 0
    for path in ("/can-bo/mot-cua", "/can-bo/bao-cao"):
        response = await page.goto(path)
        assert response is not None and response.status == 403
        assert await page.locator("h1").inner_text() == "Không có quyền truy cập"
