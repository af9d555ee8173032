"""The portal's pages against a stand-in intake (httpx.MockTransport): security headers, CSRF,
signed cookies, trusted proxies, the upload reader, and intake being down or slow to answer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from services.portal.api.security import Cookies, client_address, parse_networks
from services.portal.api.uploads import UnreadableForm, read_form
from services.portal.main import create_app
from services.portal.settings import PortalSettings
from tests.portal.unit.test_domain import procedure

Handler = Callable[[httpx.Request], httpx.Response]
PROCEDURE = procedure().model_dump(mode="json")


def intake_answers(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/api/v1/units":
        return httpx.Response(200, json=[{"code": "SHTT", "name_vi": "Cục Sở hữu trí tuệ"}])
    if path == "/api/v1/procedures":
        return httpx.Response(200, json={"items": [PROCEDURE], "next_cursor": None})
    if path == "/api/v1/procedures/1.004940":
        return httpx.Response(200, json=PROCEDURE)
    if path.startswith("/api/v1/dossiers/"):
        assert "secret" not in str(request.url)
        if request.headers.get("x-tracking-secret") != "right-secret":
            return httpx.Response(404, json={"title": "not found"})
        return httpx.Response(
            200,
            json={
                "dossier_code": "000.00.21.G12-261205-0001",
                "procedure_code": "1.004940",
                "procedure_name": "Đăng ký nhãn hiệu",
                "unit_code": "SHTT",
                "submitted_at": "2026-12-05T02:00:00Z",
                "state": 1,
                "history": [{"at": "2026-12-05T02:00:00Z", "state": 1, "action": "submit"}],
            },
        )
    return httpx.Response(404, json={})


def intake_down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


@pytest.fixture
def seen() -> list[httpx.Request]:
    return []


def portal_client(
    handler: Handler, seen: list[httpx.Request], **settings: Any
) -> httpx.AsyncClient:
    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    app = create_app(
        PortalSettings(catalogue_cache_seconds=0, **settings),
        intake_transport=httpx.MockTransport(recording),
    )
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://portal.test")


@pytest.fixture
async def portal(seen: list[httpx.Request]) -> AsyncIterator[httpx.AsyncClient]:
    async with portal_client(intake_answers, seen) as client:
        yield client


def token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_every_page_has_the_security_headers_and_lang_vi(
    portal: httpx.AsyncClient,
) -> None:
    for path in ("/", "/thu-tuc", "/thu-tuc/1.004940", "/tra-cuu", "/khong-co", "/ho-so/x"):
        response = await portal.get(path)
        assert response.status_code in (200, 404), path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "style-src 'self'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert '<html lang="vi">' in response.text
        assert " style=" not in response.text and "<script" not in response.text
        assert len(response.content) < 50_000


async def test_the_csrf_cookie_is_httponly_and_samesite(portal: httpx.AsyncClient) -> None:
    response = await portal.get("/tra-cuu")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert response.headers["cache-control"] == "no-store"


async def test_secure_cookies_when_configured(seen: list[httpx.Request]) -> None:
    async with portal_client(intake_answers, seen, cookie_secure=True) as client:
        cookie = (await client.get("/tra-cuu")).headers["set-cookie"]
    assert cookie.startswith("__Host-portal_csrf=") and "Secure" in cookie


async def test_a_form_without_its_csrf_token_is_refused_keeping_the_values(
    portal: httpx.AsyncClient, seen: list[httpx.Request]
) -> None:
    await portal.get("/tra-cuu")
    response = await portal.post(
        "/tra-cuu", data={"code": "000.00.21.G12-261205-0001", "secret": "right-secret"}
    )
    assert response.status_code == 400
    assert "Phiên làm việc đã hết hạn" in response.text
    assert 'value="000.00.21.G12-261205-0001"' in response.text
    assert not [r for r in seen if r.url.path.startswith("/api/v1/dossiers")]


async def test_tracking_moves_the_secret_into_a_cookie_never_a_url(
    portal: httpx.AsyncClient, seen: list[httpx.Request]
) -> None:
    form = await portal.get("/tra-cuu")
    code = "000.00.21.G12-261205-0001"
    wrong = await portal.post(
        "/tra-cuu", data={"csrf_token": token(form.text), "code": code, "secret": "wrong"}
    )
    assert wrong.status_code == 404 and "Không tìm thấy hồ sơ" in wrong.text
    right = await portal.post(
        "/tra-cuu", data={"csrf_token": token(form.text), "code": code, "secret": "right-secret"}
    )
    assert right.status_code == 303 and right.headers["location"] == f"/ho-so/{code}"
    page = await portal.get(right.headers["location"])
    assert "Đã nộp trực tuyến, chờ tiếp nhận" in page.text
    assert "right-secret" not in page.text
    assert all(r.headers.get("x-forwarded-for") == "198.51.100.9" for r in seen)
    # The QR link: the secret leaves the URL at once.
    portal.cookies.clear()
    link = await portal.get(f"/tra-cuu/lien-ket/{code}", params={"k": "right-secret"})
    assert link.status_code == 303 and "right-secret" not in link.headers["location"]
    assert (await portal.get(link.headers["location"])).status_code == 200


async def test_an_expired_tracking_session_asks_for_the_secret_again(
    portal: httpx.AsyncClient,
) -> None:
    page = await portal.get("/ho-so/000.00.21.G12-261205-0001")
    assert page.status_code == 200
    assert "Phiên tra cứu đã hết hạn" in page.text
    assert 'value="000.00.21.G12-261205-0001"' in page.text


async def test_intake_unavailable_is_a_vietnamese_page_not_a_stack_trace(
    seen: list[httpx.Request],
) -> None:
    async with portal_client(intake_down, seen) as client:
        response = await client.get("/thu-tuc")
        assert response.status_code == 503
        assert "Hệ thống tạm thời gián đoạn" in response.text
        assert "Traceback" not in response.text
        ready = await client.get("/health/ready")
        assert ready.status_code == 503


async def test_levels_1_and_2_have_no_online_form(seen: list[httpx.Request]) -> None:
    level_2 = procedure(level=2).model_dump(mode="json")

    def answers(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=level_2)

    async with portal_client(answers, seen) as client:
        page = await client.get("/thu-tuc/1.004940")
        assert "Nộp hồ sơ trực tuyến" not in page.text
        assert "Bộ phận Một cửa của Cục Sở hữu trí tuệ" in page.text
        assert (await client.get("/thu-tuc/1.004940/nop-ho-so")).status_code == 404


def request_from(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "headers": headers, "client": (peer, 1)})


def test_client_addresses_come_from_trusted_proxies_only() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    assert client_address(request_from("203.0.113.5", "1.2.3.4"), trusted) == "203.0.113.5"
    assert client_address(request_from("10.1.1.1", "1.2.3.4, 10.2.2.2"), trusted) == "1.2.3.4"
    assert client_address(request_from("10.1.1.1", "9.9.9.9, 1.2.3.4"), trusted) == "1.2.3.4"
    assert client_address(request_from("10.1.1.1", "junk"), trusted) == "10.1.1.1"
    assert client_address(request_from("10.1.1.1", None), trusted) == "10.1.1.1"
    assert client_address(request_from("10.1.1.1", "1.2.3.4"), []) == "10.1.1.1"


def test_signed_cookies_refuse_forgeries_and_expired_values() -> None:
    cookies = Cookies("k" * 40, secure=False)
    value = cookies.sign({"code": "A"}, "tracking")
    assert cookies.unsign(value, "tracking", max_age=60) == {"code": "A"}
    assert cookies.unsign(value, "receipt", max_age=60) is None  # another purpose
    assert cookies.unsign(value + "x", "tracking", max_age=60) is None
    assert cookies.unsign(value, "tracking", max_age=-1) is None
    assert cookies.unsign(None, "tracking", max_age=60) is None


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        PortalSettings(environment="production", cookie_secure=True)
    PortalSettings(environment="production", cookie_secure=True, secret_key="s" * 40)


async def chunks(body: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[str, bytes]:
    request = httpx.Request(
        "POST",
        "http://x/",
        data=fields,
        files=[(name, (file_name, data, "application/pdf")) for name, file_name, data in files],
    )
    return request.headers["content-type"], request.read()


async def test_the_upload_reader_keeps_fields_and_names_an_oversized_file() -> None:
    content_type, body = multipart(
        {"applicant_name": "Nguyễn Thị Lan"},
        [("document_a", "tờ khai.pdf", b"%PDF-1" * 10), ("document_b", "lớn.pdf", b"x" * 50_000)],
    )
    form = await read_form(
        content_type, chunks(body), max_file_bytes=20_000, max_files=5, hard_limit=10**6
    )
    assert form.fields["applicant_name"] == "Nguyễn Thị Lan"
    small, large = form.files
    assert (small.file_name, small.size_bytes, small.truncated) == ("tờ khai.pdf", 60, False)
    assert small.stream.read() == b"%PDF-1" * 10
    assert (large.file_name, large.size_bytes, large.truncated) == ("lớn.pdf", 50_000, True)
    form.close()


async def test_the_upload_reader_refuses_what_is_not_a_bounded_multipart_form() -> None:
    with pytest.raises(UnreadableForm):
        await read_form(
            "application/json", chunks(b"{}"), max_file_bytes=1, max_files=1, hard_limit=10
        )
    content_type, body = multipart({}, [("document_a", "a.pdf", b"x" * 5000)])
    with pytest.raises(UnreadableForm):
        await read_form(
            content_type, chunks(body), max_file_bytes=10**6, max_files=5, hard_limit=1000
        )
    files = [(f"document_{n}", f"{n}.pdf", b"x") for n in range(3)]
    content_type, body = multipart({}, files)
    with pytest.raises(UnreadableForm):
        await read_form(
            content_type, chunks(body), max_file_bytes=10**6, max_files=2, hard_limit=10**6
        )


async def test_intake_down_at_submission_keeps_everything_entered(
    seen: list[httpx.Request],
) -> None:
    def answers(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            raise httpx.ConnectError("refused", request=request)
        return intake_answers(request)

    async with portal_client(answers, seen) as client:
        form = await client.get("/thu-tuc/1.004940/nop-ho-so")
        details = {
            "applicant_kind": "person",
            "applicant_name": "Nguyễn Thị Lan",
            "applicant_identifier": "001303004567",
            "contact_phone": "0912345678",
            "form_request": "Xin cấp",
        }
        step_2 = await client.post(
            "/thu-tuc/1.004940/nop-ho-so", data={"csrf_token": token(form.text), **details}
        )
        assert step_2.status_code == 200 and "Giấy tờ và xác nhận" in step_2.text
        key = re.search(r'name="idempotency_key" value="([^"]+)"', step_2.text)
        assert key
        fields = {
            "csrf_token": token(step_2.text),
            "idempotency_key": key.group(1),
            "confirm": "yes",
            **details,
        }
        files = {
            "document_to_khai": ("tờ khai.pdf", b"%PDF-1.4", "application/pdf"),
            "document_mau": ("mẫu.png", b"\x89PNG\r\n\x1a\n", "image/png"),
        }
        down = await client.post("/thu-tuc/1.004940/nop-ho-so/gui", data=fields, files=files)
        assert down.status_code == 503
        assert "tạm thời không phản hồi" in down.text
        assert 'value="Nguyễn Thị Lan"' in down.text and key.group(1) in down.text
        assert "Bạn đã chọn tệp “tờ khai.pdf”" in down.text
        # A form whose CSRF cookie is gone (expired session): refused, values kept.
        client.cookies.clear()
        expired = await client.post("/thu-tuc/1.004940/nop-ho-so/gui", data=fields, files=files)
        assert expired.status_code == 400 and "Phiên làm việc đã hết hạn" in expired.text
        assert 'value="Nguyễn Thị Lan"' in expired.text
    posted = [r for r in seen if r.method == "POST"]
    assert len(posted) == 1 and posted[0].headers["idempotency-key"] == key.group(1)
