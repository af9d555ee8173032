"""The reports API over the in-memory read models (no broker, no database): who sees what, the
period rules as RFC 9457 problems, and the CSV and HTML renderings of the same figures."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.reporting import api
from services.reporting.adapters.memory import MemoryStore
from services.reporting.service import ReportingService
from shared.runtime.auth import DevIssuer
from shared.runtime.http import install_problem_handlers
from tests.unit.reporting.scenario import EXPECTED_MINISTRY, consume, deliveries

URL = "/api/v1/reports/quarterly?year=2026&quarter=1"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return DevIssuer(Path(tmp_path_factory.mktemp("issuer")))


@pytest.fixture
async def client(issuer: DevIssuer) -> AsyncIterator[httpx.AsyncClient]:
    """The reports routes as `main.create_app` mounts them, over the scripted events."""
    reporting = ReportingService(MemoryStore())
    await consume(reporting, deliveries())
    app = FastAPI()
    app.state.jwt_verifier = issuer.verifier()
    app.state.service_name = "reporting"
    app.state.reporting_service = reporting
    install_problem_handlers(app)
    app.include_router(api.router)
    app.include_router(api.public_router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting.test") as http:
        yield http


def auth(issuer: DevIssuer, role: str, unit: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint('u1', [role], unit, name='Lãnh đạo')}"}


async def test_unit_heads_see_their_unit_only(client: httpx.AsyncClient, issuer: DevIssuer) -> None:
    assert (await client.get(URL)).status_code == 401
    assert (await client.get(URL, headers=auth(issuer, "officer", "H56"))).status_code == 403
    head = auth(issuer, "unit_head", "H56")
    own = (await client.get(URL, headers=head)).json()
    assert own["scope"] == "H56" and [u["unit_code"] for u in own["units"]] == ["H56"]
    forbidden = await client.get(URL + "&unit=G12", headers=head)
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    assert forbidden.json()["title"] == "Không có quyền (forbidden)"
    assert forbidden.json()["detail"] == "Unit heads see their own unit only."
    assert (await client.get("/api/v1/reports/quarterly", headers=head)).status_code == 422


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("", "Give either year and quarter, or from and to (dates)."),
        ("?year=2026", "Give either year and quarter, or from and to (dates)."),
        ("?from=2026-02-01&to=2026-01-01", "from..to must span ≤ 10 years"),
    ],
)
async def test_a_period_the_api_refuses_is_a_problem(
    client: httpx.AsyncClient, issuer: DevIssuer, query: str, detail: str
) -> None:
    response = await client.get("/api/v1/reports/quarterly" + query, headers=auth(issuer, "admin"))
    assert response.status_code == 422
    problem: dict[str, Any] = response.json()
    assert problem["title"] == "Kỳ báo cáo không hợp lệ (invalid period)"
    assert problem["detail"] == detail


async def test_json_csv_and_html_carry_the_same_figures(
    client: httpx.AsyncClient, issuer: DevIssuer
) -> None:
    admin = auth(issuer, "admin")
    report = (await client.get(URL, headers=admin)).json()
    assert report["ministry"]["counts"] == EXPECTED_MINISTRY

    for url in (
        "/api/v1/reports/quarterly.csv?from=2025-12-01&to=2026-02-01",
        "/api/v1/reports/quarterly?from=2025-12-01&to=2026-02-01&format=csv",
    ):
        ranged = await client.get(url, headers=admin)
        assert ranged.headers["content-type"] == "text/csv; charset=utf-8"
        assert "bao-cao-2025-Q4_2026-Q1-ministry.csv" in ranged.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(ranged.text)))
        assert rows[0]["scope"] == "ministry" and rows[0]["quarters"] == "2025-Q4 2026-Q1"
        assert int(rows[0]["received"]) == 6 and rows[0]["on_time_rate"] == "50.00"
        assert [row["unit_code"] for row in rows[1:]] == ["G12", "H56"]

    for url in (URL + "&format=html", URL.replace("quarterly?", "quarterly.html?")):
        html = await client.get(url, headers=admin)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "Tỷ lệ hồ sơ trực tuyến" in html.text and "<svg" in html.text


async def test_public_figures_are_anonymous_cacheable_and_exact(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/public/figures?year=2026")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "public, max-age=300"
    figures = response.json()
    assert figures["year"] == 2026 and figures["quarters"][0] == "2026-Q1"
    assert figures["ministry"] == {
        "received": 6,
        "online": 3,
        "online_percent": 50.0,
        "resolved": 2,
        "on_time_percent": 50.0,
        "rated": 2,
        "satisfaction_percent": 50.0,
        "average_score": 3.5,
        "level4": {
            "level4_procedures": 1,
            "online_procedures": 2,
            "level4_percent": 50.0,
            "target_percent": 30.0,
            "meets_target": True,
        },
    }
    units = {u["unit_code"]: u for u in figures["units"]}
    assert (units["G12"]["received"], units["G12"]["satisfaction_percent"]) == (4, 100.0)
    assert (units["H56"]["average_score"], units["H56"]["satisfaction_percent"]) == (2.0, 0.0)
    assert units["H56"]["level4"]["online_procedures"] == 0
    assert units["H56"]["level4"]["meets_target"] is None
    procedures = {p["procedure_code"]: p for p in figures["procedures"]}
    assert [procedures[c]["received"] for c in ("P1", "P2", "P3")] == [2, 2, 2]
    assert procedures["P1"]["level"] == 4 and procedures["P1"]["procedure_name"] == "Thủ tục 1"
    # Aggregates only: nothing of any applicant or dossier.
    for personal in ("Nguyễn", "001203004567", "example.vn", "000.00.21"):
        assert personal not in response.text

    empty = (await client.get("/api/v1/public/figures?year=2025")).json()
    assert empty["ministry"]["received"] == 0 and empty["ministry"]["on_time_percent"] is None
    assert (await client.get("/api/v1/public/figures?year=1999")).status_code == 422


async def test_public_figures_as_csv(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/public/figures.csv?year=2026")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert "so-lieu-cong-khai-2026.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["scope"] for r in rows] == ["ministry", "unit", "unit", "procedure"] + [
        "procedure"
    ] * 2
    assert rows[0]["received"] == "6" and rows[0]["satisfaction_percent"] == "50.00"
    assert rows[0]["level4_percent"] == "50.00" and rows[0]["level4_target_percent"] == "30.00"
    assert rows[3]["procedure_code"] == "P1" and rows[3]["level"] == "4"
    assert rows[3]["level4_percent"] == ""
