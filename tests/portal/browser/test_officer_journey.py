"""The rest of the citizen's journey in a real browser, with officers acting through processing's
HTTP API: track -> send the requested supplement -> pay on the payment simulator and come back
-> download the result -> rate; a withdrawal with its confirmation step; the public figures with
the rating counted. Each new page gets the axe scan, the weight budget and screenshots."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.intake_samples import PDF, dossier_json, multipart, trademark_files
from tests.portal.browser.stack import Stack
from tests.portal.browser.test_journeys import audit

pytestmark = pytest.mark.infra


async def eventually(probe: Callable[[], Awaitable[Any]], within: float = 60) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if found := await probe():
            return found
        assert asyncio.get_running_loop().time() < deadline, f"{probe.__name__} never came true"
        await asyncio.sleep(0.25)


class Officer:
    """An officer of the unit (and its head) working the case through processing's API."""

    def __init__(self, stack: Stack, client: httpx.AsyncClient, code: str, secret: str) -> None:
        assert stack.processing_url is not None
        self.stack, self.client, self.code, self.secret = stack, client, code, secret
        self.base = f"{stack.processing_url}/api/v1/cases/{code}"

    async def act(self, action: str, body: dict | None = None, role: str = "officer") -> dict:
        response = await self.client.post(
            f"{self.base}/{action}", headers=self.stack.officer(role), json=body or {}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def wait_case(self, state: int) -> None:
        async def case_in_state() -> bool:
            response = await self.client.get(self.base, headers=self.stack.officer())
            return response.status_code == 200 and response.json()["state"] == state

        await eventually(case_in_state)

    async def wait_citizen_view(self, state: int, **fields: Any) -> dict:
        async def seen_by_citizen() -> dict | None:
            response = await self.client.get(
                f"{self.stack.intake_url}/api/v1/dossiers/{self.code}",
                headers={"X-Tracking-Secret": self.secret},
            )
            body = response.json()
            wanted = body["state"] == state and all(body.get(k) == v for k, v in fields.items())
            return body if wanted else None

        return await eventually(seen_by_citizen)

    async def issue_result(self) -> None:
        response = await self.client.post(
            f"{self.base}/result",
            headers=self.stack.officer(),
            files={"file": ("Giấy chứng nhận.pdf", PDF, "application/pdf")},
            data={"note": "Cấp giấy chứng nhận đăng ký nhãn hiệu"},
        )
        assert response.status_code == 200, response.text


async def submitted(stack: Stack, client: httpx.AsyncClient) -> tuple[str, str]:
    response = await client.post(
        f"{stack.intake_url}/api/v1/dossiers", **multipart(dossier_json(), trademark_files())
    )
    assert response.status_code == 201, response.text
    return response.json()["dossier_code"], response.json()["tracking_secret"]


async def test_supplement_pay_download_and_rate(
    page, stack: Stack, tmp_path: Path, screenshots: Path
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        code, secret = await submitted(stack, client)
        officer = Officer(stack, client, code, secret)
        await officer.wait_case(1)
        await officer.act("receive", {"note": "Hồ sơ hợp lệ"})
        await officer.act(
            "request-supplement", {"reason": "Tờ khai chưa ký", "documents": ["to_khai"]}
        )
        await officer.wait_citizen_view(5)

        # The citizen opens the dossier from the receipt's QR link: the supplement form.
        await page.goto(f"/tra-cuu/lien-ket/{code}?k={secret}")
        await page.wait_for_url(f"**/ho-so/{code}")
        assert "Nộp bổ sung hồ sơ" in await page.content()
        assert await page.locator("#document_to_khai").count() == 1
        await page.fill("#note", "Tờ khai đã ký")
        await page.click("button:has-text('Gửi giấy tờ bổ sung')")
        assert "Chọn ít nhất một tệp" in await page.locator(".error-summary").inner_text()
        assert await page.input_value("#note") == "Tờ khai đã ký"
        await audit(page, "20-bo-sung-loi", screenshots)
        signed = tmp_path / "tờ khai đã ký.pdf"
        signed.write_bytes(PDF)
        await page.set_input_files("#document_to_khai", signed)
        await page.click("button:has-text('Gửi giấy tờ bổ sung')")
        await page.wait_for_url(re.compile(r"\?xong=bo-sung$"))
        assert "Đã gửi giấy tờ bổ sung" in await page.inner_text("[role=status]")
        await audit(page, "21-bo-sung-xong", screenshots)

        # The unit asks for the fee; the citizen pays on the payment platform and comes back.
        await officer.wait_case(4)
        await officer.act("request-payment", {"amount_vnd": 150_000})
        view = await officer.wait_citizen_view(6)
        await page.goto(f"/ho-so/{code}")
        fee = f"{view['fee_vnd']:,}".replace(",", ".") + " đồng"  # what intake will charge
        assert fee in await page.inner_text("#h-thanh-toan + p")
        await audit(page, "22-ho-so-cho-thanh-toan", screenshots)
        await page.click("button:has-text('Thanh toán trực tuyến')")
        assert "Đến cổng thanh toán" in await page.content() and fee in await page.content()
        await audit(page, "23-thanh-toan", screenshots)
        payment_url = await page.get_attribute("#den-cong-thanh-toan", "href")
        assert payment_url and payment_url.startswith("http://127.0.0.1:")
        # The simulator pays, calls intake back, and sends the browser to the return page.
        await page.click("#den-cong-thanh-toan")
        await page.wait_for_url(re.compile(rf"/ho-so/{re.escape(code)}/thanh-toan/ket-qua$"))
        await officer.wait_citizen_view(4, paid=True)
        await page.reload()
        assert "Thanh toán thành công" in await page.inner_text("[role=status]")
        await audit(page, "24-thanh-toan-ket-qua", screenshots)

        # The result is issued online: the citizen downloads it through the portal.
        await officer.act("approve", role="unit_head")
        await officer.issue_result()
        await officer.wait_citizen_view(9, result_available=True)
        await page.goto(f"/ho-so/{code}")
        assert "Tải kết quả điện tử" in await page.content()
        await audit(page, "25-ho-so-co-ket-qua", screenshots)
        async with page.expect_download() as waiting:
            await page.click("text=Tải kết quả điện tử")
        download = await waiting.value
        saved = tmp_path / "ket-qua.pdf"
        await download.save_as(saved)
        assert saved.read_bytes() == PDF
        assert download.suggested_filename.endswith(".pdf")

        # Returned: the citizen rates the service, once.
        await officer.act("return-result", {"method": "online"})
        await officer.wait_citizen_view(10, ratable=True)
        await page.goto(f"/ho-so/{code}")
        await page.fill("#comment", "Nhanh và rõ ràng")
        await page.click("button:has-text('Gửi đánh giá')")
        assert "Chọn mức độ hài lòng" in await page.locator(".error-summary").inner_text()
        assert await page.input_value("#comment") == "Nhanh và rõ ràng"
        await audit(page, "26-danh-gia-loi", screenshots)
        await page.check("#score_5")
        await page.click("button:has-text('Gửi đánh giá')")
        await page.wait_for_url(re.compile(r"\?xong=danh-gia$"))
        content = await page.content()
        assert "Cảm ơn bạn đã đánh giá" in content and "Bạn đã đánh giá 5/5" in content
        assert await page.locator("button:has-text('Gửi đánh giá')").count() == 0
        await audit(page, "27-danh-gia-xong", screenshots)

        # Reporting counts the rating in the public figures (read through the portal).
        assert stack.reporting_url is not None

        async def rating_counted() -> dict | None:
            response = await client.get(f"{stack.reporting_url}/api/v1/public/figures")
            ministry = response.json()["ministry"]
            return ministry if ministry["rated"] >= 1 else None

        ministry = await eventually(rating_counted)
        assert ministry["satisfaction_percent"] == 100.0 and ministry["average_score"] == 5.0

    await page.goto("/so-lieu")
    assert await page.locator("figure.chart svg[role=img]").count() == 4
    table = await page.inner_text("#h-don-vi + .table-scroll")
    assert "Cục Sở hữu trí tuệ" in table and "100%" in table
    await audit(page, "28-so-lieu", screenshots)
    year = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).year
    csv_response = await page.request.get(f"/so-lieu/{year}.csv")
    rows = list(csv.DictReader(io.StringIO(await csv_response.text())))
    assert rows[0]["scope"] == "ministry" and int(rows[0]["rated"]) >= 1
    assert csv_response.headers["cache-control"] == "public, max-age=300"


async def test_withdrawal_needs_a_confirmation(page, stack: Stack, screenshots: Path) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        code, secret = await submitted(stack, client)
    await page.goto(f"/tra-cuu/lien-ket/{code}?k={secret}")
    await page.click("text=Rút hồ sơ")
    await page.wait_for_url(f"**/ho-so/{code}/rut-ho-so")
    await audit(page, "29-rut-ho-so", screenshots)
    await page.fill("#reason", "Nộp nhầm thủ tục")
    await page.click("button:has-text('Xác nhận rút hồ sơ')")
    assert "Đánh dấu ô xác nhận" in await page.locator(".error-summary").inner_text()
    assert await page.input_value("#reason") == "Nộp nhầm thủ tục"
    await audit(page, "30-rut-ho-so-loi", screenshots)
    await page.check("#confirm")
    await page.click("button:has-text('Xác nhận rút hồ sơ')")
    await page.wait_for_url(re.compile(r"\?xong=rut-ho-so$"))
    assert "Đã gửi yêu cầu rút hồ sơ" in await page.inner_text("[role=status]")
    # Asked twice (the back button): intake refuses, the page says the state changed.
    await page.goto(f"/ho-so/{code}/rut-ho-so")
    if await page.locator("#confirm").count():
        await page.check("#confirm")
        await page.click("button:has-text('Xác nhận rút hồ sơ')")
        assert "vừa thay đổi" in await page.content()
