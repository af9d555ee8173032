"""HTTP conventions: `Content-Disposition` for any file name, `Allow` on every 405, 503 while
the infrastructure is away, and client addresses from trusted proxies only."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from pymongo.errors import ServerSelectionTimeoutError

from shared.runtime.http import (
    PROBLEM_JSON,
    BodySizeLimit,
    Problem,
    content_disposition,
    install_problem_handlers,
)
from shared.runtime.service import server_config
from shared.runtime.settings import ServiceSettings


def test_a_vietnamese_name_gets_an_ascii_fallback_and_the_exact_utf8_name() -> None:
    header = content_disposition("Kết quả đăng ký.pdf")
    assert header == (
        'attachment; filename="Ket qua dang ky.pdf"; '
        "filename*=utf-8''K%E1%BA%BFt%20qu%E1%BA%A3%20%C4%91%C4%83ng%20k%C3%BD.pdf"
    )
    header.encode("latin-1")  # a valid header value


def test_quotes_and_backslashes_cannot_break_out_of_the_fallback() -> None:
    header = content_disposition('Kết quả "cuối"\\v2.pdf', inline=True)
    assert header == (
        'inline; filename="Ket qua _cuoi__v2.pdf"; '
        "filename*=utf-8''K%E1%BA%BFt%20qu%E1%BA%A3%20%22cu%E1%BB%91i%22%5Cv2.pdf"
    )


def test_a_plain_ascii_name_is_kept_as_is() -> None:
    assert content_disposition("bao-cao-2025Q1-all.csv") == (
        "attachment; filename=\"bao-cao-2025Q1-all.csv\"; filename*=utf-8''bao-cao-2025Q1-all.csv"
    )


def test_other_scripts_and_control_characters_are_replaced_in_the_fallback() -> None:
    header = content_disposition("报告\r\n.pdf")
    assert header == (
        "attachment; filename=\"____.pdf\"; filename*=utf-8''%E6%8A%A5%E5%91%8A__.pdf"
    )
    header.encode("ascii")


async def test_a_405_allows_every_method_of_the_path_across_routes_and_routers() -> None:
    app = FastAPI()
    install_problem_handlers(app)
    router = APIRouter(prefix="/api")
    nested = APIRouter()

    @app.get("/api/items/{code}")
    async def read(code: str) -> dict[str, str]:
        return {"code": code}

    @router.put("/items/{code}")
    async def replace(code: str) -> dict[str, str]:
        return {"code": code}

    @nested.delete("/items/{code}")
    async def remove(code: str) -> None:
        return None

    @app.post("/api/items")
    async def create() -> None:  # another path: never in the `Allow` of /api/items/{code}
        return None

    router.include_router(nested)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/api/items/A-1")
        other = await client.get("/api/items")

    assert answer.status_code == 405
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["status"] == 405
    assert answer.headers["allow"] == "DELETE, GET, PUT"  # FastAPI answers HEAD only when declared
    assert other.status_code == 405 and other.headers["allow"] == "POST"


async def test_a_database_outage_answers_503_with_retry_after_not_500() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/cases")
    async def cases() -> None:
        raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    # Answered without re-raising: an outage logs one line per request, not a traceback.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/cases")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "27017" not in response.text  # no internal detail


async def _client_address_seen(trusted: str, peer: str, forwarded: str | None) -> str:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(request: Request) -> str:
        return request.client.host if request.client else ""

    config = server_config(app, ServiceSettings(trusted_proxies=trusted))
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40000))
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return (await client.get("/whoami", headers=headers)).json()


async def test_a_forwarded_address_is_believed_only_from_a_configured_proxy() -> None:
    ingress = "10.42.0.0/16"
    # Behind the ingress, each citizen keeps their own address (own rate-limit bucket).
    assert await _client_address_seen(ingress, "10.42.3.7", "203.0.113.9") == "203.0.113.9"
    assert await _client_address_seen(ingress, "10.42.3.7", "198.51.100.4") == "198.51.100.4"
    # Anyone else claiming an address is seen as who they are, locally too.
    assert await _client_address_seen(ingress, "192.0.2.1", "203.0.113.9") == "192.0.2.1"
    assert await _client_address_seen("", "127.0.0.1", "203.0.113.9") == "127.0.0.1"


async def test_bodies_over_the_limit_are_refused_before_parsing_or_authentication() -> None:
    app = FastAPI()
    install_problem_handlers(app)
    parsed: list[str] = []

    def staff_only() -> None:
        raise Problem(401, "Unauthorized")

    @app.post("/api/v1/cases/{code}/notes", dependencies=[Depends(staff_only)])
    async def note(code: str, body: dict[str, str]) -> None:
        parsed.append(code)

    @app.post("/api/v1/cases/{code}/result", dependencies=[Depends(staff_only)])
    async def result(code: str, request: Request) -> None:
        parsed.append((await request.body()).decode()[:1])

    app.add_middleware(
        BodySizeLimit,
        service="processing",
        max_bytes=1024,
        larger={"/api/v1/cases/{code}/result": 4096},
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        big = "x" * 2000
        declared = await client.post("/api/v1/cases/C1/notes", json={"text": big})
        assert declared.status_code == 413  # by its Content-Length, never read

        async def chunks():  # no Content-Length: counted as it streams
            for _ in range(4):
                yield b"x" * 600

        streamed = await client.post("/api/v1/cases/C1/notes", content=chunks())
        assert streamed.status_code == 413
        assert streamed.headers["content-type"] == PROBLEM_JSON
        # An upload route has its own limit; within it, authentication answers as usual.
        upload = await client.post("/api/v1/cases/C1/result", content=big)
        assert upload.status_code == 401
        too_big = await client.post("/api/v1/cases/C1/result", content="x" * 5000)
        assert too_big.status_code == 413
        small = await client.post("/api/v1/cases/C1/notes", json={"text": "ok"})
        assert small.status_code == 401
    assert parsed == []
