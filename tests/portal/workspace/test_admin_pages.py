"""The administrator's pages against stand-ins of the provider, intake's admin API (which checks a
procedure with the contract's own strict model, as intake does) and processing's calendar API:
the catalogue form saved with the administrator's token, intake's validation errors in
Vietnamese beside the fields, the working calendar's form, and an officer kept out."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from pydantic import ValidationError

from services.portal.main import create_app
from services.portal.settings import PortalSettings
from services.portal.workspace.admin import FeeRow, ProcedureForm, differences, field_errors
from shared.contracts.catalogue import Procedure
from tests.portal.workspace.test_pages import ISSUER, KEY, PORTAL, PROCEDURE, Provider, csrf

CODE = str(PROCEDURE["code"])


class AdminProvider(Provider):
    """The stand-in provider; `quantri` is an administrator without a unit."""

    def tokens(self, nonce: str | None, username: str, id_token: bool = True) -> dict[str, Any]:
        answer = super().tokens(nonce, username, id_token)
        if id_token and username == "quantri":
            claims = jwt.decode(answer["id_token"], options={"verify_signature": False})
            claims.update(roles=["admin"], unit=None, iat=int(time.time()))
            answer["id_token"] = jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})
        return answer


def version_of(procedure: dict[str, Any]) -> str:
    """Intake's `ETag`: the content's sha-256, quoted."""
    content = {k: v for k, v in procedure.items() if k != "mode"}
    return '"' + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest() + '"'


@dataclass
class Services:
    """Intake's catalogue (public and admin) and processing's calendar changes."""

    procedures: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {CODE: {**PROCEDURE, "fees": [], "mode": "toan_trinh"}}
    )
    calendar: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    puts: list[dict[str, Any]] = field(default_factory=list)
    if_match: list[str | None] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.tokens.append(request.headers.get("authorization", ""))
        path, method = request.url.path, request.method
        if path == "/api/v1/procedures":
            return httpx.Response(200, json={"items": list(self.procedures.values())})
        if path.startswith("/api/v1/procedures/"):
            found = self.procedures.get(path.rsplit("/", 1)[1])
            if not found:
                return httpx.Response(404, json={})
            return httpx.Response(200, json=found, headers={"ETag": version_of(found)})
        if path.startswith("/api/v1/admin/procedures/") and method == "PUT":
            self.puts.append(json.loads(request.content))
            self.if_match.append(request.headers.get("if-match"))
            stored = self.procedures.get(path.rsplit("/", 1)[1])
            if stored and request.headers.get("if-match") is None:
                return httpx.Response(428, json={"title": "If-Match required", "status": 428})
            if stored and request.headers["if-match"] != version_of(stored):
                return httpx.Response(
                    412,
                    json={"title": "Thủ tục đã được thay đổi bởi người khác", "status": 412},
                    headers={"ETag": version_of(stored)},
                )
            try:
                procedure = Procedure.model_validate_json(request.content, strict=True)
            except ValidationError as invalid:  # as intake's problem handler answers it
                errors = [
                    {"location": ["body", *e["loc"]], "message": e["msg"], "type": e["type"]}
                    for e in invalid.errors()
                ]
                return httpx.Response(
                    422, json={"title": "Dữ liệu không hợp lệ (invalid request)", "errors": errors}
                )
            self.procedures[procedure.code] = procedure.model_dump(mode="json")
            return httpx.Response(200, json=self.procedures[procedure.code])
        if path == "/api/v1/calendar/changes" and method == "GET":
            return httpx.Response(200, json=self.calendar)
        if path == "/api/v1/calendar/changes" and method == "POST":
            body = json.loads(request.content)
            self.calendar.append(body)
            return httpx.Response(201, json=body)
        return httpx.Response(404, json={"title": "not found"})


@dataclass
class AdminWorkspace:
    client: httpx.AsyncClient
    provider: AdminProvider
    services: Services

    async def sign_in(self, username: str) -> None:
        started = await self.client.get("/can-bo/dang-nhap")
        location = started.headers["location"]
        code = self.provider.authorise(location)
        self.provider.authorisations[code]["username"] = username
        state = parse_qs(urlsplit(location).query)["state"][0]
        done = await self.client.get(f"/can-bo/dang-nhap/xong?code={code}&state={state}")
        assert done.status_code == 303, done.text


@pytest.fixture
async def workspace() -> AsyncIterator[AdminWorkspace]:
    provider, services = AdminProvider(), Services()
    transport = httpx.MockTransport(services.handle)
    app = create_app(
        PortalSettings(oidc_issuer_url=ISSUER, oidc_redirect_base_url=PORTAL),
        processing_transport=transport,
        intake_transport=transport,
        provider_transport=httpx.MockTransport(provider.handle),
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 5000)), base_url=PORTAL
    )
    async with client:
        yield AdminWorkspace(client, provider, services)


def form_fields(html: str) -> dict[str, str]:
    """The edit form's values as the browser would send them (text inputs, selects, boxes)."""
    fields = dict(re.findall(r'<input type="text" id="[^"]+" name="([^"]+)" value="([^"]*)"', html))
    for name, options in re.findall(
        r'<select id="[^"]+" name="([^"]+)"[^>]*>(.*?)</select>', html, re.S
    ):
        chosen = re.search(r'<option value="([^"]*)" selected>', options)
        fields[name] = chosen.group(1) if chosen else ""
    for name in re.findall(r'type="checkbox" id="[^"]+" name="([^"]+)" value="1" checked', html):
        fields[name] = "1"
    fields["csrf_token"] = csrf(html)
    version = re.search(r'<input type="hidden" name="version" value="([^"]*)">', html)
    assert version, html
    fields["version"] = version.group(1).replace("&#34;", '"')
    return fields


async def test_the_administrator_edits_a_fee_and_the_catalogue_shows_it(
    workspace: AdminWorkspace,
) -> None:
    await workspace.sign_in("quantri")
    home = await workspace.client.get("/can-bo/quan-tri/thu-tuc")
    assert home.status_code == 200
    assert 'href="/can-bo/quan-tri/thu-tuc"' in home.text  # the admin's navigation
    assert f'href="/can-bo/quan-tri/thu-tuc/{CODE}"' in home.text

    page = await workspace.client.get(f"/can-bo/quan-tri/thu-tuc/{CODE}")
    assert page.status_code == 200 and "Sửa thủ tục 1.004940" in page.text
    fields = form_fields(page.text)
    assert fields["doc_code_0"] == "to_khai" and fields["doc_mandatory_0"] == "1"
    assert fields["level"] == "4"
    fields.update(
        fee_name_0="Lệ phí nộp đơn",
        fee_amount_0="150.000",
        time_value="1,5",
        time_unit="months",
        doc_code_2="uy_quyen",
        doc_name_2="Giấy ủy quyền",
        doc_formats_2="pdf; JPG",
    )
    saved = await workspace.client.post(f"/can-bo/quan-tri/thu-tuc/{CODE}", data=fields)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/can-bo/quan-tri/thu-tuc/{CODE}?xong=1"

    sent = workspace.services.puts[-1]
    assert "mode" not in sent and sent["name"] == PROCEDURE["name"]  # the rest kept
    assert sent["fees"] == [{"name": "Lệ phí nộp đơn", "amount_vnd": 150000}]
    assert sent["processing_time"] == {"value": 1.5, "unit": "months", "note": None}
    assert sent["documents"][2] == {
        "code": "uy_quyen",
        "name": "Giấy ủy quyền",
        "mandatory": False,
        "formats": ["pdf", "jpg"],
    }
    assert len(sent["documents"]) == 3  # the blank rows dropped
    assert workspace.services.tokens[-1] == workspace.services.tokens[0] != ""  # admin's own
    after = await workspace.client.get(f"/can-bo/quan-tri/thu-tuc/{CODE}?xong=1")
    assert "Đã lưu thủ tục." in after.text
    listed = await workspace.client.get("/can-bo/quan-tri/thu-tuc")
    assert "150.000 đồng" in listed.text


async def test_intakes_validation_errors_are_shown_in_vietnamese_by_the_fields(
    workspace: AdminWorkspace,
) -> None:
    await workspace.sign_in("quantri")
    page = await workspace.client.get(f"/can-bo/quan-tri/thu-tuc/{CODE}")
    fields = form_fields(page.text)
    fields.update(fee_name_0="Lệ phí", fee_amount_0="-5000", time_value="0")
    refused = await workspace.client.post(f"/can-bo/quan-tri/thu-tuc/{CODE}", data=fields)
    assert refused.status_code == 422
    html = refused.text
    assert "<title>Lỗi:" in html and "Có 2 lỗi cần sửa" in html
    assert 'href="#fee_amount_0"' in html and 'href="#time_value"' in html
    assert "Số tiền (đồng), dòng 1: Nhập số nguyên từ 0 trở lên." in html
    assert 'id="fee_amount_0-error"' in html and 'value="-5000"' in html  # what was typed
    assert "Thời hạn giải quyết: Nhập một số lớn hơn 0." in html
    assert "greater than" not in html  # intake's English stays out

    # Not a number at all: said here, nothing sent.
    sent = len(workspace.services.puts)
    fields.update(fee_amount_0="mười nghìn", time_value="15")
    refused = await workspace.client.post(f"/can-bo/quan-tri/thu-tuc/{CODE}", data=fields)
    assert refused.status_code == 422 and "Nhập một số." in refused.text
    assert len(workspace.services.puts) == sent

    # Without the form's CSRF token: refused before anything is sent.
    fields.pop("csrf_token")
    assert (
        await workspace.client.post(f"/can-bo/quan-tri/thu-tuc/{CODE}", data=fields)
    ).status_code == 400


async def test_the_calendar_form_adds_a_make_up_working_day(workspace: AdminWorkspace) -> None:
    await workspace.sign_in("quantri")
    page = await workspace.client.get("/can-bo/quan-tri/lich-lam-viec?nam=2027")
    assert page.status_code == 200 and "Chưa có thay đổi nào" in page.text
    missing = await workspace.client.post(
        "/can-bo/quan-tri/lich-lam-viec", data={"csrf_token": csrf(page.text), "day": "2027-02"}
    )
    assert missing.status_code == 422
    assert "Có 3 lỗi cần sửa" in missing.text and workspace.services.calendar == []
    added = await workspace.client.post(
        "/can-bo/quan-tri/lich-lam-viec",
        data={
            "csrf_token": csrf(page.text),
            "day": "2027-02-20",
            "working": "1",
            "reason": "Thông báo 01/TB-BNV: làm bù ngày 12/02",
        },
    )
    assert added.status_code == 303
    assert added.headers["location"] == "/can-bo/quan-tri/lich-lam-viec?nam=2027&xong=1"
    assert workspace.services.calendar == [
        {"day": "2027-02-20", "working": True, "reason": "Thông báo 01/TB-BNV: làm bù ngày 12/02"}
    ]
    shown = await workspace.client.get(added.headers["location"])
    assert "Đã thêm thay đổi vào lịch làm việc." in shown.text
    assert "20/02/2027" in shown.text and "Ngày làm việc bù" in shown.text
    other_year = await workspace.client.get("/can-bo/quan-tri/lich-lam-viec?nam=2026")
    assert "20/02/2027" not in other_year.text


async def test_an_officer_has_no_admin_link_and_is_refused(workspace: AdminWorkspace) -> None:
    await workspace.sign_in("cv.shtt")
    home = await workspace.client.get("/can-bo/bao-cao")  # any workspace page with the nav
    assert "/can-bo/quan-tri" not in home.text
    for path in ("/can-bo/quan-tri/thu-tuc", f"/can-bo/quan-tri/thu-tuc/{CODE}"):
        refused = await workspace.client.get(path)
        assert refused.status_code == 403 and "Không có quyền truy cập" in refused.text
    page = await workspace.client.get("/can-bo/bao-cao")
    posted = await workspace.client.post(
        "/can-bo/quan-tri/lich-lam-viec",
        data={"csrf_token": csrf(page.text), "day": "2027-02-20", "working": "1", "reason": "x"},
    )
    assert posted.status_code == 403
    assert workspace.services.calendar == [] and workspace.services.puts == []


def test_a_rows_error_maps_to_its_field_and_blank_rows_are_dropped() -> None:
    form = ProcedureForm.read(
        {
            "level": "3",
            "fee_name_0": "",
            "fee_amount_0": "",
            "fee_name_1": "Phí",
            "fee_amount_1": "1",
        }
    )
    assert [f.name for f in form.fees] == ["Phí"]
    found, general = field_errors(
        {
            "errors": [
                {"location": ["body", "level"], "type": "less_than_equal", "message": "x"},
                {"location": ["body", "legal_basis"], "type": "string_type", "message": "Sai"},
            ]
        }
    )
    assert found == {"level": "Chọn mức độ từ 1 đến 4."} and general == ["Sai."]


async def test_the_second_save_from_the_same_version_is_refused_and_shows_what_changed(
    workspace: AdminWorkspace,
) -> None:
    """Two administrators open the same procedure; the first saves a new level, the second (from
    the version both loaded) a fee: the second is told, sees the stored values, and what they
    typed is listed, not lost."""
    await workspace.sign_in("quantri")
    page = await workspace.client.get(f"/can-bo/quan-tri/thu-tuc/{CODE}")
    first, second = form_fields(page.text), form_fields(page.text)
    loaded = first["version"]
    assert re.fullmatch(r'"[0-9a-f]{64}"', loaded)

    first.update(level="3")
    saved = await workspace.client.post(f"/can-bo/quan-tri/thu-tuc/{CODE}", data=first)
    assert saved.status_code == 303, saved.text
    assert workspace.services.if_match == [loaded]

    second.update(fee_name_0="Lệ phí thẩm định", fee_amount_0="200.000")
    refused = await workspace.client.post(f"/can-bo/quan-tri/thu-tuc/{CODE}", data=second)
    assert refused.status_code == 409
    assert workspace.services.if_match == [loaded, loaded]
    assert workspace.services.procedures[CODE]["fees"] == []  # nothing overwritten
    assert "vừa được một quản trị viên khác thay đổi" in refused.text
    assert 'role="alert"' in refused.text
    # The form holds the stored values now (the first administrator's level) and the new version.
    again = form_fields(refused.text)
    assert again["level"] == "3" and again["fee_name_0"] == ""
    assert again["version"] == version_of(workspace.services.procedures[CODE]) != loaded
    # What the second administrator typed is listed against what is stored.
    unsaved = refused.text[refused.text.index('<table class="unsaved"') :]
    unsaved = unsaved[: unsaved.index("</table>")]
    assert "Phí, lệ phí" in unsaved and "Lệ phí thẩm định: 200.000 đồng" in unsaved
    assert "Mức độ dịch vụ công" in unsaved  # stored 3, typed (as loaded) 4

    # Typed again on the reloaded form, the save goes through.
    again.update(fee_name_0="Lệ phí thẩm định", fee_amount_0="200.000")
    done = await workspace.client.post(f"/can-bo/quan-tri/thu-tuc/{CODE}", data=again)
    assert done.status_code == 303, done.text
    stored = workspace.services.procedures[CODE]
    assert stored["level"] == 3 and stored["fees"] == [
        {"name": "Lệ phí thẩm định", "amount_vnd": 200000}
    ]


async def test_a_forged_version_is_not_sent_and_intake_asks_for_one(
    workspace: AdminWorkspace,
) -> None:
    await workspace.sign_in("quantri")
    page = await workspace.client.get(f"/can-bo/quan-tri/thu-tuc/{CODE}")
    fields = {**form_fields(page.text), "version": '"x"\r\nX-Injected: 1'}
    answer = await workspace.client.post(f"/can-bo/quan-tri/thu-tuc/{CODE}", data=fields)
    assert answer.status_code == 409 and workspace.services.if_match == [None]
    assert "vừa được một quản trị viên khác thay đổi" in answer.text


def test_a_conflict_lists_what_differs_with_amounts_written_alike() -> None:
    stored = ProcedureForm(level="4", fees=[FeeRow("Phí thẩm định", "300000")])
    same_amount_typed_with_dots = ProcedureForm(
        level="4", fees=[FeeRow("Phí thẩm định", "300.000")]
    )
    assert differences(stored, same_amount_typed_with_dots) == []

    typed = ProcedureForm(level="3", fees=[FeeRow("Phí thẩm định", "280.000")])
    listed = {d.label: (d.current, d.entered) for d in differences(stored, typed)}
    assert listed["Phí, lệ phí"] == ("Phí thẩm định: 300.000 đồng", "Phí thẩm định: 280.000 đồng")
    assert set(listed) == {"Phí, lệ phí", "Mức độ dịch vụ công"}
