"""HTTP conventions: `Content-Disposition` for any file name, and `Allow` on every 405."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI

from shared.http import PROBLEM_JSON, content_disposition, install_problem_handlers


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
