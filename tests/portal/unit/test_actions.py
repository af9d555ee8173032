"""The tracking page's actions (supplement, withdrawal, payment, result, rating) and the public
figures page, against stand-ins of intake and reporting (httpx.MockTransport), and the pure view
logic behind them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest

from services.portal.domain.figures import (
    BAR_AREA,
    PublicFigures,
    bar_chart,
    percent_text,
    unit_charts,
)
from services.portal.domain.tracking import (
    DossierStatus,
    actions,
    rating_errors,
    withdrawal_errors,
)
from services.portal.main import create_app
from services.portal.settings import PortalSettings
from tests.portal.unit.test_domain import procedure
from tests.portal.unit.test_pages import token

CODE = "000.00.21.G12-261205-0001"
SECRET = "right-secret"
PROCEDURE = procedure().model_dump(mode="json")


def status(state: int, **fields: Any) -> dict[str, Any]:
    return {
        "dossier_code": CODE,
        "procedure_code": "1.004940",
        "procedure_name": "Đăng ký nhãn hiệu",
        "unit_code": "SHTT",
        "level": 4,
        "fee_vnd": 150000,
        "submitted_at": "2026-12-05T02:00:00Z",
        "state": state,
        "history": [{"at": "2026-12-05T02:00:00Z", "state": 1, "action": "submit"}],
        **fields,
    }


FIGURES = {
    "year": 2026,
    "quarters": ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"],
    "as_of": "2026-12-05",
    "generated_at": "2026-12-05T02:00:00Z",
    "ministry": {
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
    },
    "units": [
        {
            "unit_code": "SHTT",
            "unit_name": "Cục Sở hữu trí tuệ",
            "received": 4,
            "online": 3,
            "online_percent": 75.0,
            "resolved": 1,
            "on_time_percent": 100.0,
            "rated": 1,
            "satisfaction_percent": 100.0,
            "average_score": 5.0,
            "level4": {"level4_procedures": 1, "online_procedures": 4, "level4_percent": 25.0},
        },
        {
            "unit_code": "ATBXHN",
            "unit_name": "Cục An toàn bức xạ và hạt nhân",
            "received": 2,
            "online": 0,
            "online_percent": 0.0,
            "resolved": 1,
            "on_time_percent": None,
            "rated": 0,
            "satisfaction_percent": None,
            "average_score": None,
            "level4": {"level4_procedures": 0, "online_procedures": 0, "level4_percent": None},
        },
    ],
    "procedures": [
        {
            "procedure_code": "1.004940",
            "procedure_name": "Đăng ký nhãn hiệu",
            "unit_code": "SHTT",
            "level": 4,
            "received": 4,
            "online": 3,
            "online_percent": 75.0,
            "resolved": 1,
            "on_time_percent": 100.0,
            "rated": 1,
            "satisfaction_percent": 100.0,
            "average_score": 5.0,
        }
    ],
}
FIGURES_CSV = "scope,received\r\nministry,6\r\n"


@dataclass
class Stand:
    """The stand-ins' state: the dossier's status, what intake was sent, what it answers."""

    dossier: dict[str, Any] = field(default_factory=lambda: status(4))
    sent: list[httpx.Request] = field(default_factory=list)
    answers: dict[str, httpx.Response] = field(default_factory=dict)
    reporting_up: bool = True

    def intake(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/procedures/1.004940":
            return httpx.Response(200, json=PROCEDURE)
        assert "secret" not in str(request.url)
        if request.headers.get("x-tracking-secret") != SECRET:
            return httpx.Response(404, json={"title": "not found"})
        if request.method == "POST":
            request.read()
            self.sent.append(request)
        for suffix, answer in self.answers.items():
            if path.endswith(suffix):
                return answer
        if path == f"/api/v1/dossiers/{CODE}":
            return httpx.Response(200, json=self.dossier)
        if path.endswith("/payments"):
            return httpx.Response(
                201,
                json={
                    "transaction_id": "t1",
                    "amount_vnd": 150000,
                    "payment_url": "http://pay.test/pay/t1",
                },
            )
        if path.endswith("/result"):
            return httpx.Response(
                200,
                content=b"%PDF-1.4 result",
                headers={
                    "content-type": "application/pdf",
                    "content-disposition": 'attachment; filename="ket-qua.pdf"',
                },
            )
        if path.endswith(("/withdrawal", "/supplements")):
            return httpx.Response(202, json={"dossier_code": CODE})
        if path.endswith("/rating"):
            return httpx.Response(201, json={"dossier_code": CODE, "score": 5, "rated_at": "x"})
        return httpx.Response(404, json={})

    def reporting(self, request: httpx.Request) -> httpx.Response:
        if not self.reporting_up:
            raise httpx.ConnectError("refused", request=request)
        self.sent.append(request)
        if request.url.path == "/api/v1/public/figures.csv":
            return httpx.Response(200, text=FIGURES_CSV, headers={"content-type": "text/csv"})
        if request.url.path == "/api/v1/public/figures":
            return httpx.Response(200, json=FIGURES)
        return httpx.Response(404)


@pytest.fixture
def stand() -> Stand:
    return Stand()


@pytest.fixture
async def portal(stand: Stand) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        PortalSettings(catalogue_cache_seconds=0, figures_cache_seconds=0),
        intake_transport=httpx.MockTransport(stand.intake),
        reporting_transport=httpx.MockTransport(stand.reporting),
    )
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:
        yield client


async def tracked(portal: httpx.AsyncClient) -> str:
    """Open the tracking session; the CSRF token of the dossier page."""
    link = await portal.get(f"/tra-cuu/lien-ket/{CODE}", params={"k": SECRET})
    assert link.status_code == 303
    page = await portal.get(f"/ho-so/{CODE}")
    assert page.status_code == 200
    return token(page.text)


def view(state: int, **fields: Any) -> DossierStatus:
    return DossierStatus.model_validate(status(state, **fields))


# --- pure view logic ------------------------------------------------------------------------------


def test_the_actions_follow_the_state_and_the_level() -> None:
    assert actions(view(5)).supplement and actions(view(5)).withdraw
    assert not actions(view(4)).supplement
    assert actions(view(6)).pay and not actions(view(6, paid=True)).pay
    assert not actions(view(6, level=3)).pay  # level 3 pays at the counter
    assert actions(view(9, result_available=True)).download_result
    assert not actions(view(9, result_available=True, level=3)).download_result
    assert not actions(view(9)).withdraw and not actions(view(7)).withdraw
    withdrawn = view(4, history=[{"at": "2026-12-05T03:00:00Z", "state": 4, "action": "x"}])
    assert actions(withdrawn).withdraw
    asked = view(
        4, history=[{"at": "2026-12-05T03:00:00Z", "state": 4, "action": "request_withdrawal"}]
    )
    assert not actions(asked).withdraw
    assert actions(view(10, ratable=True)).rate
    assert not actions(view(10, ratable=True, rating={"score": 4, "at": "2026-12-06T00:00Z"})).rate
    assert not actions(view(9)).rate
    assert not actions(view(3)).any and actions(view(4)).any


def test_rating_and_withdrawal_forms_are_checked() -> None:
    assert rating_errors("5", "") == {}
    assert set(rating_errors(None, "")) == {"score"}
    assert set(rating_errors("6", "")) == {"score"}
    assert set(rating_errors("3", "x" * 2001)) == {"comment"}
    assert withdrawal_errors(True, "") == {}
    assert set(withdrawal_errors(False, "y" * 1001)) == {"confirm", "reason"}


def test_bar_charts_have_geometry_and_text_equivalents() -> None:
    chart = bar_chart("c", "Tỷ lệ", [("A", 50.0), ("B", None), ("C", 120.0)], target=30.0)
    assert [bar.width for bar in chart.bars] == [BAR_AREA / 2, 0.0, BAR_AREA]
    assert [bar.text for bar in chart.bars] == ["50%", "Chưa có số liệu", "120%"]
    assert [bar.meets for bar in chart.bars] == [True, None, True]
    # A value is written right of the bar area; "no data" inside its empty track, where it fits.
    assert [bar.x_text for bar in chart.bars] == [BAR_AREA + 6, 6, BAR_AREA + 6]
    assert chart.target_x == BAR_AREA * 0.3
    assert chart.summary == "Tỷ lệ. A: 50%; B: Chưa có số liệu; C: 120%. Mục tiêu: 30%."
    assert percent_text(87.56) == "87,6%" and percent_text(None) == "Chưa có số liệu"
    figures = PublicFigures.model_validate(FIGURES)
    charts = unit_charts(figures)
    assert [c.id for c in charts][2] == "bieu-do-muc-do-4"
    assert charts[2].bars[0].meets is False  # 25% is below the 30% target
    assert figures.as_of == date(2026, 12, 5)


# --- the pages -----------------------------------------------------------------------------------


async def test_a_finished_dossier_is_rated_once_through_intake(
    portal: httpx.AsyncClient, stand: Stand
) -> None:
    stand.dossier = status(10, ratable=True)
    csrf = await tracked(portal)
    page = await portal.get(f"/ho-so/{CODE}")
    assert "Đánh giá mức độ hài lòng" in page.text and 'name="score"' in page.text

    missing = await portal.post(
        f"/ho-so/{CODE}/danh-gia", data={"csrf_token": csrf, "comment": "Rất nhanh"}
    )
    assert missing.status_code == 422
    assert "Chọn mức độ hài lòng" in missing.text and "Rất nhanh" in missing.text
    assert not stand.sent

    rated = await portal.post(
        f"/ho-so/{CODE}/danh-gia", data={"csrf_token": csrf, "score": "5", "comment": " Tốt "}
    )
    assert rated.status_code == 303 and rated.headers["location"] == f"/ho-so/{CODE}?xong=danh-gia"
    [sent] = stand.sent
    assert json.loads(sent.content) == {"score": 5, "comment": "Tốt"}
    assert sent.headers["x-tracking-secret"] == SECRET
    thanks = await portal.get(rated.headers["location"])
    assert "Cảm ơn bạn đã đánh giá" in thanks.text

    stand.answers["/rating"] = httpx.Response(
        409, json={"type": "urn:dvc:problem:already-rated", "title": "x", "status": 409}
    )
    again = await portal.post(
        f"/ho-so/{CODE}/danh-gia", data={"csrf_token": csrf, "score": "2", "comment": "Lại"}
    )
    assert again.status_code == 409 and "đã được đánh giá" in again.text
    assert "Lại" in again.text


async def test_withdrawal_asks_for_confirmation_and_keeps_the_reason(
    portal: httpx.AsyncClient, stand: Stand
) -> None:
    csrf = await tracked(portal)
    page = await portal.get(f"/ho-so/{CODE}")
    assert f'href="/ho-so/{CODE}/rut-ho-so"' in page.text
    confirm = await portal.get(f"/ho-so/{CODE}/rut-ho-so")
    assert confirm.status_code == 200 and "Xác nhận rút hồ sơ" in confirm.text
    unconfirmed = await portal.post(
        f"/ho-so/{CODE}/rut-ho-so", data={"csrf_token": csrf, "reason": "Nộp nhầm thủ tục"}
    )
    assert unconfirmed.status_code == 422
    assert "Đánh dấu ô xác nhận" in unconfirmed.text and "Nộp nhầm thủ tục" in unconfirmed.text
    assert not stand.sent
    expired = await portal.post(
        f"/ho-so/{CODE}/rut-ho-so",
        data={"csrf_token": "forged", "reason": "Nộp nhầm thủ tục", "confirm": "yes"},
    )
    assert expired.status_code == 400 and "Nộp nhầm thủ tục" in expired.text
    done = await portal.post(
        f"/ho-so/{CODE}/rut-ho-so",
        data={"csrf_token": csrf, "reason": "Nộp nhầm thủ tục", "confirm": "yes"},
    )
    assert done.status_code == 303 and done.headers["location"].endswith("?xong=rut-ho-so")
    [sent] = stand.sent
    assert sent.url.path.endswith("/withdrawal")
    assert json.loads(sent.content) == {"reason": "Nộp nhầm thủ tục"}

    # Not withdrawable any more: the confirmation step says the state changed.
    stand.dossier = status(9)
    late = await portal.get(f"/ho-so/{CODE}/rut-ho-so")
    assert late.status_code == 409 and "vừa thay đổi" in late.text


async def test_a_supplement_is_streamed_to_intake_and_errors_keep_the_note(
    portal: httpx.AsyncClient, stand: Stand
) -> None:
    stand.dossier = status(5, requested_documents=["mau"])
    csrf = await tracked(portal)
    page = await portal.get(f"/ho-so/{CODE}")
    assert "Nộp bổ sung hồ sơ" in page.text and 'name="document_mau"' in page.text
    assert 'name="document_to_khai"' not in page.text  # only what was requested

    empty = await portal.post(
        f"/ho-so/{CODE}/bo-sung",
        data={"csrf_token": csrf, "note": "Bản đã ký"},
        files={"document_mau": ("", b"", "application/octet-stream")},
    )
    assert empty.status_code == 422 and "Chọn ít nhất một tệp" in empty.text
    assert "Bản đã ký" in empty.text

    sent = await portal.post(
        f"/ho-so/{CODE}/bo-sung",
        data={"csrf_token": csrf, "note": "Bản đã ký"},
        files={"document_mau": ("mẫu.png", b"\x89PNG data", "image/png")},
    )
    assert sent.status_code == 303 and sent.headers["location"].endswith("?xong=bo-sung")
    [forwarded] = stand.sent
    assert b'name="mau"; filename="m' in forwarded.content and b"\x89PNG data" in forwarded.content
    assert "Bản đã ký".encode() in forwarded.content

    stand.answers["/supplements"] = httpx.Response(
        422,
        json={
            "type": "urn:dvc:problem:attachment-wrong-type",
            "title": "Tệp đính kèm không hợp lệ (invalid attachment)",
            "detail": "Định dạng tệp không đúng (wrong type)",
            "document_type": "mau",
            "status": 422,
        },
    )
    refused = await portal.post(
        f"/ho-so/{CODE}/bo-sung",
        data={"csrf_token": csrf, "note": "Bản đã ký"},
        files={"document_mau": ("giả.png", b"not a png", "image/png")},
    )
    assert refused.status_code == 422
    assert "giả.png" in refused.text and "Định dạng tệp không đúng" in refused.text


async def test_payment_goes_to_the_platform_and_comes_back_to_the_outcome(
    portal: httpx.AsyncClient, stand: Stand
) -> None:
    stand.dossier = status(6)
    csrf = await tracked(portal)
    page = await portal.get(f"/ho-so/{CODE}")
    assert "Thanh toán trực tuyến" in page.text and "150.000 đồng" in page.text
    started = await portal.post(f"/ho-so/{CODE}/thanh-toan", data={"csrf_token": csrf})
    assert started.status_code == 200
    assert 'href="http://pay.test/pay/t1"' in started.text
    assert started.headers["cache-control"] == "no-store"
    pending = await portal.get(f"/ho-so/{CODE}/thanh-toan/ket-qua")
    assert "Chưa nhận được xác nhận thanh toán" in pending.text
    stand.dossier = status(4, paid=True)
    paid = await portal.get(f"/ho-so/{CODE}/thanh-toan/ket-qua")
    assert "Thanh toán thành công" in paid.text

    stand.dossier = status(6)
    stand.answers["/payments"] = httpx.Response(503, json={"title": "down", "status": 503})
    down = await portal.post(f"/ho-so/{CODE}/thanh-toan", data={"csrf_token": csrf})
    assert down.status_code == 503 and "Cổng thanh toán tạm thời không phản hồi" in down.text


async def test_the_result_is_streamed_from_intake(portal: httpx.AsyncClient, stand: Stand) -> None:
    stand.dossier = status(9, result_available=True)
    await tracked(portal)
    page = await portal.get(f"/ho-so/{CODE}")
    assert f'href="/ho-so/{CODE}/ket-qua"' in page.text
    result = await portal.get(f"/ho-so/{CODE}/ket-qua")
    assert result.status_code == 200 and result.content == b"%PDF-1.4 result"
    assert result.headers["content-type"] == "application/pdf"
    assert "ket-qua.pdf" in result.headers["content-disposition"]
    assert result.headers["cache-control"] == "no-store"

    stand.answers["/result"] = httpx.Response(404, json={"title": "no result", "status": 404})
    none = await portal.get(f"/ho-so/{CODE}/ket-qua")
    assert none.status_code == 404 and "Chưa có kết quả điện tử" in none.text


async def test_actions_need_the_tracking_session(portal: httpx.AsyncClient, stand: Stand) -> None:
    for method, path in (
        ("POST", "danh-gia"),
        ("POST", "rut-ho-so"),
        ("POST", "thanh-toan"),
        ("GET", "ket-qua"),
        ("GET", "thanh-toan/ket-qua"),
    ):
        response = await portal.request(method, f"/ho-so/{CODE}/{path}", data={})
        assert "Phiên tra cứu đã hết hạn" in response.text, path
    assert not stand.sent


async def test_the_public_figures_page_has_charts_tables_and_open_data(
    portal: httpx.AsyncClient, stand: Stand
) -> None:
    page = await portal.get("/so-lieu")
    assert page.status_code == 200
    assert page.text.count('<svg viewBox="0 0 400') == 4 and "<desc id=" in page.text
    assert "Cục Sở hữu trí tuệ: 75%" in page.text  # the chart's text equivalent
    assert "<table>" in page.text and "Đăng ký nhãn hiệu" in page.text
    assert 'href="/so-lieu/2026.csv"' in page.text and 'href="/so-lieu/2026.json"' in page.text
    assert "style=" not in page.text and "<script" not in page.text

    csv_file = await portal.get("/so-lieu/2026.csv")
    assert csv_file.status_code == 200
    assert csv_file.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_file.headers["cache-control"] == "public, max-age=300"
    assert "so-lieu-cong-khai-2026.csv" in csv_file.headers["content-disposition"]
    assert list(csv.reader(io.StringIO(csv_file.text)))[1] == ["ministry", "6"]
    json_file = await portal.get("/so-lieu/2026.json")
    assert json_file.json()["ministry"]["received"] == 6
    assert [r.url.params.get("year") for r in stand.sent] == [None, "2026", "2026"]
    assert (await portal.get("/so-lieu/1990.csv")).status_code == 404
    assert (await portal.get("/so-lieu?nam=abcd")).status_code == 404

    stand.reporting_up = False
    down = await portal.get("/so-lieu?nam=2025")
    assert down.status_code == 503 and "Số liệu tạm thời gián đoạn" in down.text
