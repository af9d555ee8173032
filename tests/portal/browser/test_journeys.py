"""The citizen's journeys in a real browser (Chromium, headless) against the real stack: find a
procedure, apply with files, get the receipt, track the dossier; the bad inputs on the way; the
keyboard-only application; an axe-core scan, the weight and screenshots of every page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import TimeoutError as PlaywrightTimeout
from pymongo import AsyncMongoClient

from tests.intake_samples import PDF, PNG, valid_tax_code
from tests.portal.browser.stack import MAX_FILE_BYTES, Stack

pytestmark = pytest.mark.infra

TRADEMARK = "1.004940"  # Đăng ký nhãn hiệu, level 4: to_khai (pdf/docx), mau_nhan_hieu (pdf/png)
PAGE_BUDGET = 50_000  # bytes of the page itself: HTML, CSS, scripts, images
AXE = Axe()
WEIGHT = """() => {
  const page = performance.getEntriesByType('navigation')[0];
  const parts = performance.getEntriesByType('resource');
  return (page ? page.decodedBodySize : 0) + parts.reduce((sum, e) => sum + e.decodedBodySize, 0);
}"""


async def audit(page, name: str, screenshots: Path) -> None:
    """No serious or critical axe violation, under the weight budget, no horizontal scrolling at
    360 px, and screenshots at 390x844 and 1280x800."""
    results = await AXE.run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"{name}: {serious}"
    weight = await page.evaluate(WEIGHT)
    assert 0 < weight < PAGE_BUDGET, f"{name}: {weight} bytes"
    assert await page.locator("html").get_attribute("lang") == "vi"
    await page.set_viewport_size({"width": 360, "height": 740})
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, f"{name}: {width}px wide at 360px"
    for width, height in ((390, 844), (1280, 800)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.screenshot(path=screenshots / f"{name}-{width}x{height}.png", full_page=True)


async def dossiers(stack: Stack) -> int:
    client: AsyncMongoClient = AsyncMongoClient(stack.mongo_url)
    try:
        return await client[stack.intake_database]["dossiers"].count_documents({})
    finally:
        await client.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    contents = {
        "tờ khai.pdf": PDF,
        "mẫu nhãn.png": PNG,
        "ghi chú.txt": b"just text",
        "ảnh lớn.png": PNG + b"\x00" * (MAX_FILE_BYTES + 10),
        "giả mạo.pdf": PNG,  # a PNG named .pdf: only intake, reading the content, can tell
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


async def fill_details(page, *, identifier: str = "001303004567", kind: str = "person") -> None:
    await page.check(f"#applicant_kind_{kind}")
    name = "Nguyễn Thị Lan" if kind == "person" else "Công ty Ánh Dương"
    await page.fill("#applicant_name", name)
    await page.fill("#applicant_identifier", identifier)
    await page.fill("#contact_email", "lan.nguyen@example.vn")
    await page.fill("#form_request", "Đăng ký nhãn hiệu Sao Mai")


async def attach(page, to_khai: Path, mau: Path, *, confirm: bool = True) -> None:
    await page.set_input_files("#document_to_khai", to_khai)
    await page.set_input_files("#document_mau_nhan_hieu", mau)
    if confirm:
        await page.check("#confirm")


async def test_a_citizen_finds_a_procedure_applies_and_tracks(
    page, stack: Stack, files: dict[str, Path], screenshots: Path
) -> None:
    before = await dossiers(stack)
    # Home -> accent-insensitive search -> the procedure.
    await page.goto("/")
    await audit(page, "01-trang-chu", screenshots)
    await page.fill("#q", "dang ky nhan hieu")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/thu-tuc\?q="))
    assert await page.locator(f'a[href="/thu-tuc/{TRADEMARK}"]').count() == 1
    await audit(page, "02-danh-muc-tim-kiem", screenshots)
    await page.click(f'a[href="/thu-tuc/{TRADEMARK}"]')
    assert await page.locator(".badge").inner_text() == "Mức độ 4"
    content = await page.content()
    for fact in ("Thời hạn giải quyết", "Phí, lệ phí", "Thành phần hồ sơ", "Căn cứ pháp lý"):
        assert fact in content
    assert "Cục Sở hữu trí tuệ" in content
    await audit(page, "03-thu-tuc-muc-4", screenshots)
    await page.click("text=Nộp hồ sơ trực tuyến")

    # Step 1: an invalid citizen ID, then a wrong tax-code check digit; nothing typed is lost.
    await fill_details(page, identifier="12345")
    await page.click("button:has-text('Tiếp tục')")
    assert "đúng 12 chữ số" in await page.locator(".error-summary").inner_text()
    assert await page.input_value("#applicant_name") == "Nguyễn Thị Lan"
    assert await page.input_value("#form_request") == "Đăng ký nhãn hiệu Sao Mai"
    assert await page.get_attribute("#applicant_identifier", "aria-invalid") == "true"
    await audit(page, "04-buoc-1-loi", screenshots)
    good = valid_tax_code()
    wrong = good[:-1] + str((int(good[-1]) + 1) % 10)
    await fill_details(page, kind="organisation", identifier=wrong)
    await page.click("button:has-text('Tiếp tục')")
    assert "chữ số kiểm tra" in await page.locator("#applicant_identifier-error").inner_text()
    assert await page.is_checked("#applicant_kind_organisation")
    await fill_details(page)
    await page.click("button:has-text('Tiếp tục')")

    # Step 2: review, then a wrong file type and an oversized file, named after the error.
    assert "Kiểm tra thông tin người nộp" in await page.content()
    assert "001303004567" in await page.locator(".review").inner_text()
    await audit(page, "05-buoc-2", screenshots)
    await attach(page, files["ghi chú.txt"], files["ảnh lớn.png"], confirm=False)
    await page.click("button:has-text('Nộp hồ sơ')")
    errors = await page.locator(".error-summary").inner_text()
    assert "“ghi chú.txt” không đúng định dạng" in errors
    assert "“ảnh lớn.png” có dung lượng" in errors and "vượt giới hạn" in errors
    assert "cam đoan" in errors
    assert "Bạn đã chọn tệp “ghi chú.txt”" in await page.content()
    assert await page.input_value("input[name=applicant_name] >> nth=0") == "Nguyễn Thị Lan"
    await audit(page, "06-buoc-2-loi", screenshots)
    # A PNG named .pdf passes the portal's look at the name; intake reads the content.
    await attach(page, files["giả mạo.pdf"], files["mẫu nhãn.png"])
    await page.click("button:has-text('Nộp hồ sơ')")
    assert "không phải PDF" in await page.locator("#document_to_khai-error").inner_text()
    assert await dossiers(stack) == before

    # The right files: the receipt, with the secret shown once and a QR code.
    await attach(page, files["tờ khai.pdf"], files["mẫu nhãn.png"])
    await page.click("button:has-text('Nộp hồ sơ')")
    await page.wait_for_url("**/ho-so/bien-nhan")
    code = await page.inner_text("#ma-ho-so")
    secret = await page.inner_text("#ma-bi-mat")
    assert re.fullmatch(r"\d{3}\.\d{2}\.\d{2}\.G12-\d{6}-\d{4}", code)
    assert "Hãy lưu giữ mã bí mật này" in await page.content()
    assert await page.locator("figure.qr svg").count() == 1
    assert secret not in page.url
    await audit(page, "07-bien-nhan", screenshots)
    await page.emulate_media(media="print")
    await page.screenshot(path=screenshots / "07-bien-nhan-in.png", full_page=True)
    await page.emulate_media(media="screen")
    assert await dossiers(stack) == before + 1
    await page.reload()
    content = await page.content()
    assert "không còn hiển thị" in content and secret not in content

    # Tracking: a wrong secret, then the right one; the secret never appears in a URL.
    await page.goto(f"/tra-cuu?code={code}")
    await audit(page, "08-tra-cuu", screenshots)
    await page.fill("#secret", "sai-ma-bi-mat")
    await page.click("button:has-text('Tra cứu')")
    assert "Không tìm thấy hồ sơ" in await page.locator("#secret-error").inner_text()
    assert await page.input_value("#code") == code
    await audit(page, "09-tra-cuu-loi", screenshots)
    await page.fill("#secret", secret)
    await page.click("button:has-text('Tra cứu')")
    await page.wait_for_url(f"**/ho-so/{code}")
    assert "Đã nộp trực tuyến, chờ tiếp nhận" in await page.inner_text(".status-box")
    assert await page.locator(".timeline li").count() >= 1
    assert "Việc bạn cần làm" in await page.content()
    await audit(page, "10-ho-so", screenshots)

    # The QR link: the secret moves into a cookie and out of the address bar.
    await page.context.clear_cookies()
    await page.goto(f"/tra-cuu/lien-ket/{code}?k={secret}")
    assert page.url == f"{stack.portal_url}/ho-so/{code}"
    assert "Đã nộp trực tuyến, chờ tiếp nhận" in await page.content()
    # An expired session asks for the secret again, the code kept.
    await page.context.clear_cookies()
    await page.reload()
    assert "Phiên tra cứu đã hết hạn" in await page.content()
    assert await page.input_value("#code") == code


async def test_a_double_click_or_a_resubmitted_form_makes_one_dossier(
    page, stack: Stack, files: dict[str, Path]
) -> None:
    await page.goto(f"/thu-tuc/{TRADEMARK}/nop-ho-so")
    await fill_details(page)
    await page.click("button:has-text('Tiếp tục')")
    await attach(page, files["tờ khai.pdf"], files["mẫu nhãn.png"])
    form = page.locator("form[enctype='multipart/form-data']")
    fields = {
        name: await form.locator(f"input[name='{name}']").input_value()
        for name in (
            "csrf_token",
            "idempotency_key",
            "applicant_kind",
            "applicant_name",
            "applicant_identifier",
            "applicant_address",
            "contact_email",
            "contact_phone",
            "form_request",
        )
    }
    before = await dossiers(stack)
    await page.dblclick("button:has-text('Nộp hồ sơ')")
    await page.wait_for_url("**/ho-so/bien-nhan")
    code = await page.inner_text("#ma-ho-so")
    assert await dossiers(stack) == before + 1
    # The same form sent again (back and resubmit): the first dossier's receipt.
    again = await page.request.post(
        f"/thu-tuc/{TRADEMARK}/nop-ho-so/gui",
        multipart={
            **fields,
            "confirm": "yes",
            "document_to_khai": {
                "name": "tờ khai.pdf",
                "mimeType": "application/pdf",
                "buffer": PDF,
            },
            "document_mau_nhan_hieu": {
                "name": "mẫu nhãn.png",
                "mimeType": "image/png",
                "buffer": PNG,
            },
        },
        max_redirects=0,
    )
    assert again.status == 303, await again.text()
    await page.goto("/ho-so/bien-nhan")
    assert await page.inner_text("#ma-ho-so") == code
    assert await dossiers(stack) == before + 1


async def tab_to(page, selector: str, presses: int = 60) -> None:
    """Press Tab until the element is focused: it must be reachable by keyboard."""
    target = page.locator(selector)
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{selector} not reachable with Tab")


async def open_file_chooser_with_space(page) -> Any:
    """Space on a focused file input opens the chooser. On a loaded machine Chromium sometimes
    drops the first press (no dialog, no error), as a user would see: press again, three times
    at most."""
    for attempt in range(3):
        try:
            async with page.expect_file_chooser(timeout=10_000) as chooser:
                await page.keyboard.press("Space")
            return await chooser.value
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def test_the_application_can_be_completed_with_the_keyboard_only(
    page, stack: Stack, files: dict[str, Path]
) -> None:
    await page.goto(f"/thu-tuc/{TRADEMARK}")
    await tab_to(page, f'a[href="/thu-tuc/{TRADEMARK}/nop-ho-so"]')
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/nop-ho-so")
    for selector, text in (
        ("#applicant_name", "Trần Văn Minh"),
        ("#applicant_identifier", "001203004568"),
        ("#contact_phone", "0912345678"),
    ):
        await tab_to(page, selector)
        await page.keyboard.type(text)
    await tab_to(page, "button:has-text('Tiếp tục')")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("text=Giấy tờ và xác nhận")
    for selector, path in (
        ("#document_to_khai", files["tờ khai.pdf"]),
        ("#document_mau_nhan_hieu", files["mẫu nhãn.png"]),
    ):
        await tab_to(page, selector)
        await (await open_file_chooser_with_space(page)).set_files(path)
    await tab_to(page, "#confirm")
    await page.keyboard.press("Space")
    await tab_to(page, "button:has-text('Nộp hồ sơ')")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/ho-so/bien-nhan")
    assert await page.inner_text("#ma-ho-so")


async def test_browsing_the_catalogue_by_unit_level_and_field(
    page, stack: Stack, screenshots: Path
) -> None:
    await page.goto("/thu-tuc")
    assert await page.locator(".results > li").count() == 20
    await audit(page, "11-danh-muc", screenshots)
    await page.click("text=Trang sau »")
    assert "Kết quả 21–40" in await page.inner_text("#ket-qua")
    await page.select_option("#unit", "SHTT")
    await page.select_option("#level", "4")
    await page.click("form.filters button[type=submit]")
    results = page.locator(".results > li")
    assert await results.count() >= 1
    for meta in await results.locator(".meta").all_inner_texts():
        assert "Mức độ 4" in meta and "Cục Sở hữu trí tuệ" in meta
    field = await page.locator("#field option").nth(1).get_attribute("value")
    assert field
    await page.select_option("#unit", "")
    await page.select_option("#level", "")
    await page.select_option("#field", field)
    await page.click("form.filters button[type=submit]")
    metas = await page.locator(".results .meta").all_inner_texts()
    assert metas and all(field in meta for meta in metas)
    # A level-2 procedure: where and how to submit in person, no online button.
    await page.select_option("#field", "")
    await page.select_option("#level", "2")
    await page.click("form.filters button[type=submit]")
    await page.locator(".results a").first.click()
    assert "Mức độ 2" in await page.inner_text(".badge")
    assert await page.locator("text=Nộp hồ sơ trực tuyến").count() == 0
    assert "Bộ phận Một cửa" in await page.content()
    await audit(page, "12-thu-tuc-muc-2", screenshots)
    response = await page.goto("/thu-tuc/khong-ton-tai")
    assert response is not None and response.status == 404
    assert "Không tìm thấy trang" in await page.content()
    await audit(page, "13-khong-tim-thay", screenshots)
