"""The administrator's pages (`/can-bo/quan-tri`, role `admin`): the procedure catalogue (level,
processing time, fees, required documents) saved through intake's admin API
(`PUT /api/v1/admin/procedures/{code}`, with the version the form was loaded with as `If-Match`:
a save that another administrator's came before is refused, and the form is shown again with the
stored values and what the administrator typed), and the working calendar's announced changes
(days off, make-up working days) through processing's calendar API (`/api/v1/calendar/changes`).
Every call carries the administrator's own access token: intake and processing decide who may
change what.

The forms are plain server-rendered HTML (repeated rows for fees and documents, no script). The
pages only turn the entered text into the JSON types; intake and processing check the rules and
their validation errors are shown in Vietnamese beside the fields (`field_errors`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from services.portal.adapters.urls import path_segment
from services.portal.domain.application import vietnamese_part
from services.portal.domain.labels import money_text
from services.portal.workspace.processing import (
    ProcessingRefused,
    ProcessingUnavailable,
)
from services.portal.workspace.report import VIETNAM
from services.portal.workspace.routes import HOME, SignedIn, Workspace, WorkspaceDep
from services.portal.workspace.sessions import StaffSession

ADMIN = f"{HOME}/quan-tri"
PROCEDURES = f"{ADMIN}/thu-tuc"
CALENDAR = f"{ADMIN}/lich-lam-viec"
ADMIN_ROLES = frozenset({"admin"})
BLANK_ROWS = 2  # empty rows after the existing fees and documents, to add new ones
MAX_ROWS = 40
_CODE = re.compile(r"^[0-9A-Za-z.\-_]{1,40}$")

LEVELS = {
    1: "Mức độ 1 – thông tin",
    2: "Mức độ 2 – tải biểu mẫu",
    3: "Mức độ 3 – dịch vụ công trực tuyến một phần",
    4: "Mức độ 4 – dịch vụ công trực tuyến toàn trình",
}
TIME_UNITS = {
    "working_days": "ngày làm việc",
    "calendar_days": "ngày",
    "working_hours": "giờ làm việc",
    "months": "tháng",
}
LABELS = {
    "level": "Mức độ dịch vụ công",
    "time_value": "Thời hạn giải quyết",
    "time_unit": "Đơn vị thời hạn",
    "time_note": "Ghi chú về thời hạn",
    "fee_name": "Tên phí, lệ phí",
    "fee_amount": "Số tiền (đồng)",
    "doc_code": "Mã giấy tờ",
    "doc_name": "Tên giấy tờ",
    "doc_formats": "Định dạng tệp",
    "day": "Ngày",
    "working": "Loại thay đổi",
    "reason": "Lý do, căn cứ",
}
# Intake's and processing's validation errors (pydantic's `type`) in Vietnamese, by field kind.
RANGE_MESSAGES = {
    "level": "Chọn mức độ từ 1 đến 4.",
    "time_value": "Nhập một số lớn hơn 0.",
    "time_unit": "Chọn đơn vị trong danh sách.",
    "fee_amount": "Nhập số nguyên từ 0 trở lên.",
    "doc_formats": "Định dạng không hợp lệ (ví dụ: pdf, jpg, png).",
    "day": "Ngày không hợp lệ.",
    "working": "Chọn loại thay đổi.",
}
EMPTY_TYPES = frozenset({"missing", "string_too_short"})
EMPTY = "Không được để trống."
NOT_A_NUMBER = "Nhập một số."
SAVED = "Đã lưu thủ tục. Thay đổi được công bố tới các hệ thống xử lý và cổng dịch vụ công."
ADDED = "Đã thêm thay đổi vào lịch làm việc."
CHANGED_MEANWHILE = (
    "Chưa lưu: thủ tục vừa được một quản trị viên khác thay đổi sau khi bạn mở trang này. "
    "Biểu mẫu dưới đây đã được tải lại với nội dung hiện tại; những gì bạn đã nhập khác với "
    "nội dung hiện tại được liệt kê trong bảng bên dưới. Vui lòng xem lại, nhập lại thay đổi "
    "của bạn rồi lưu."
)
# A version that cannot be an entity tag intake answered (the form's hidden field is the
# browser's to send: anything else is dropped, and intake asks for a version).
_VERSION = re.compile(r'^"[0-9a-f]{64}"$')
UNAVAILABLE = (
    "Hệ thống tạm thời không phản hồi; thay đổi chưa được lưu. Vui lòng gửi lại sau ít phút."
)

router = APIRouter(include_in_schema=False)


def _administrator(session: StaffSession) -> bool:
    return bool(session.profile and session.profile.roles & ADMIN_ROLES)


# --- the services' admin APIs, with the administrator's token -----------------------------------


async def _call(
    workspace: Workspace, method: str, url: str, token: str, *, body: Any = None, params: Any = None
) -> Any:
    """Through the workspace's staff client (its transport and timeouts); refusals are the
    workspace's exceptions (401, 403, 404, 409, other 4xx; 5xx or no answer: unavailable)."""
    return await workspace.apis.send_json(method, url, token, body=body, params=params)


def _intake(workspace: Workspace, path: str) -> str:
    return workspace.apis.intake_base_url + path


def _processing(workspace: Workspace, path: str) -> str:
    return workspace.portal.settings.processing_base_url.rstrip("/") + path


# --- the procedure form: pure ---------------------------------------------------------------------


@dataclass
class FeeRow:
    name: str = ""
    amount: str = ""


@dataclass
class DocumentRow:
    code: str = ""
    name: str = ""
    mandatory: bool = True
    formats: str = "pdf"


@dataclass
class ProcedureForm:
    """The editable part of a procedure, as text (what the administrator typed)."""

    level: str = ""
    time_value: str = ""
    time_unit: str = "working_days"
    time_note: str = ""
    fees: list[FeeRow] = field(default_factory=list)
    documents: list[DocumentRow] = field(default_factory=list)

    @classmethod
    def of(cls, procedure: dict[str, Any]) -> ProcedureForm:
        time = procedure.get("processing_time") or {}
        value = time.get("value")
        return cls(
            level=str(procedure.get("level", "")),
            time_value="" if value is None else _number_text(float(value)),
            time_unit=str(time.get("unit") or "working_days"),
            time_note=str(time.get("note") or ""),
            fees=[
                FeeRow(str(f.get("name", "")), str(f.get("amount_vnd", "")))
                for f in procedure.get("fees") or []
            ],
            documents=[
                DocumentRow(
                    str(d.get("code", "")),
                    str(d.get("name", "")),
                    bool(d.get("mandatory", True)),
                    ", ".join(d.get("formats") or []),
                )
                for d in procedure.get("documents") or []
            ],
        )

    @classmethod
    def read(cls, form: dict[str, str]) -> ProcedureForm:
        """From the posted form: rows `fee_name_0`, `fee_amount_0`, ..., `doc_code_0`, ...;
        a row left wholly empty is dropped."""
        fees = [
            FeeRow(form.get(f"fee_name_{n}", "").strip(), form.get(f"fee_amount_{n}", "").strip())
            for n in range(MAX_ROWS)
        ]
        documents = [
            DocumentRow(
                form.get(f"doc_code_{n}", "").strip(),
                form.get(f"doc_name_{n}", "").strip(),
                form.get(f"doc_mandatory_{n}") == "1",
                form.get(f"doc_formats_{n}", "").strip(),
            )
            for n in range(MAX_ROWS)
        ]
        return cls(
            level=form.get("level", "").strip(),
            time_value=form.get("time_value", "").strip(),
            time_unit=form.get("time_unit", "").strip(),
            time_note=form.get("time_note", "").strip(),
            fees=[f for f in fees if f.name or f.amount],
            documents=[d for d in documents if d.code or d.name or d.formats],
        )

    def with_blank_rows(self) -> ProcedureForm:
        return ProcedureForm(
            self.level,
            self.time_value,
            self.time_unit,
            self.time_note,
            [*self.fees, *(FeeRow() for _ in range(BLANK_ROWS))],
            [
                *self.documents,
                *(DocumentRow(mandatory=False, formats="") for _ in range(BLANK_ROWS)),
            ],
        )

    def procedure(self, current: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The procedure to send (the current one with the edited fields), and the fields whose
        text is not even a number (checked here; every other rule is intake's)."""
        errors: dict[str, str] = {}
        level = _integer(self.level)
        if level is None:
            errors["level"] = RANGE_MESSAGES["level"]
        time: dict[str, Any] | None = None
        if self.time_value or self.time_note:
            value = _decimal(self.time_value)
            if value is None:
                errors["time_value"] = EMPTY if not self.time_value else NOT_A_NUMBER
            time = {"value": value, "unit": self.time_unit, "note": self.time_note or None}
        fees = []
        for n, fee in enumerate(self.fees):
            amount = _integer(fee.amount)
            if amount is None:
                errors[f"fee_amount_{n}"] = EMPTY if not fee.amount else NOT_A_NUMBER
            fees.append({"name": fee.name, "amount_vnd": amount})
        documents = [
            {
                "code": d.code,
                "name": d.name,
                "mandatory": d.mandatory,
                "formats": [f.strip().lower() for f in re.split(r"[,;\s]+", d.formats) if f],
            }
            for d in self.documents
        ]
        kept = {k: v for k, v in current.items() if k != "mode"}  # `mode` follows the level
        return (
            {**kept, "level": level, "processing_time": time, "fees": fees, "documents": documents},
            errors,
        )


@dataclass(frozen=True)
class Difference:
    """A part of the form where what the administrator typed differs from what is stored."""

    label: str
    current: str
    entered: str


def differences(current: ProcedureForm, entered: ProcedureForm) -> list[Difference]:
    """What the administrator typed that the stored procedure does not have (after a save that
    another administrator's change came before): each part as text, stored against typed."""

    def level(form: ProcedureForm) -> str:
        number = _integer(form.level)
        return LEVELS.get(number, form.level) if number is not None else form.level

    def time(form: ProcedureForm) -> str:
        if not form.time_value and not form.time_note:
            return ""
        unit = TIME_UNITS.get(form.time_unit, form.time_unit)
        note = f" ({form.time_note})" if form.time_note else ""
        return f"{form.time_value} {unit}{note}"

    def fees(form: ProcedureForm) -> str:
        def amount(text: str) -> str:  # "300000" and "300.000" alike: 300.000 đồng
            number = _integer(text)
            return money_text(number) if number is not None else f"{text} đồng"

        return "; ".join(f"{fee.name}: {amount(fee.amount)}" for fee in form.fees)

    def documents(form: ProcedureForm) -> str:
        return "; ".join(
            f"{d.code} – {d.name} ({d.formats}){', bắt buộc' if d.mandatory else ''}"
            for d in form.documents
        )

    parts = (
        (LABELS["level"], level),
        (LABELS["time_value"], time),
        ("Phí, lệ phí", fees),
        ("Thành phần hồ sơ", documents),
    )
    return [
        Difference(label, shown(current) or "(trống)", shown(entered) or "(trống)")
        for label, shown in parts
        if shown(current) != shown(entered)
    ]


def field_errors(problem: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """A service's 422 (`errors[].location` like `["body", "fees", 0, "amount_vnd"]`) as form
    field -> Vietnamese message, and what belongs to no field (for the summary)."""
    found: dict[str, str] = {}
    general: list[str] = []
    for error in problem.get("errors") or []:
        location = [str(part) for part in error.get("location") or [] if part != "body"]
        name = _field_of(location)
        kind = re.sub(r"_\d+$", "", name or "")
        if name is None:
            general.append(vietnamese_part(str(error.get("message") or "")))
        elif name not in found:
            empty = error.get("type") in EMPTY_TYPES
            found[name] = EMPTY if empty else RANGE_MESSAGES.get(kind, "Giá trị không hợp lệ.")
    if not found and not general:
        title = str(problem.get("title") or problem.get("detail") or "")
        general.append(vietnamese_part(title) if title else "Dữ liệu không hợp lệ.")
    return found, general


def _field_of(location: list[str]) -> str | None:
    match location:
        case ["level", *_]:
            return "level"
        case ["processing_time"]:
            return "time_value"
        case ["processing_time", "value" | "unit" | "note" as part, *_]:
            return f"time_{part}"
        case ["fees", row, "name" | "amount_vnd" as part, *_] if row.isdigit():
            return f"fee_{'name' if part == 'name' else 'amount'}_{row}"
        case ["documents", row, "code" | "name" | "formats" as part, *_] if row.isdigit():
            return f"doc_{part}_{row}"
        case ["day" | "working" | "reason" as part, *_]:
            return part
    return None


def _integer(text: str) -> int | None:
    """`150000`, `150.000`, `150 000` (Vietnamese thousands) -> 150000."""
    cleaned = re.sub(r"[.\s]", "", text)
    return int(cleaned) if re.fullmatch(r"-?\d+", cleaned) else None


def _decimal(text: str) -> float | None:
    """`15`, `1,5` (Vietnamese decimal comma), `1.5` -> a number."""
    cleaned = text.replace(",", ".")
    return float(cleaned) if re.fullmatch(r"-?\d+(\.\d+)?", cleaned) else None


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value).replace(".", ",")


# --- the procedure pages -------------------------------------------------------------------------


@router.get(PROCEDURES)
async def procedures(
    request: Request,
    workspace: WorkspaceDep,
    session: SignedIn,
    words: Annotated[str | None, Query(alias="q", max_length=200)] = None,
    cursor: Annotated[str | None, Query(alias="sau", max_length=40)] = None,
) -> Response:
    """The catalogue, 50 a page, searchable; each procedure links to its form."""
    if not _administrator(session):
        return workspace.error(request, 403)
    token = await workspace.access_token(session, PROCEDURES)
    params: dict[str, Any] = {"limit": 50}
    if words and words.strip():
        params["q"] = words.strip()
    if cursor:
        params["cursor"] = cursor
    page = await _call(
        workspace, "GET", _intake(workspace, "/api/v1/procedures"), token, params=params
    )
    return workspace.render(
        request,
        "workspace/admin_procedures.html",
        {
            "items": page.get("items") or [],
            "words": words or "",
            "next_cursor": page.get("next_cursor"),
            "levels": LEVELS,
            "time_units": TIME_UNITS,
        },
        session=session,
    )


@router.get(PROCEDURES + "/{code}")
async def procedure_form(
    request: Request,
    workspace: WorkspaceDep,
    session: SignedIn,
    code: str,
    saved: Annotated[str | None, Query(alias="xong", max_length=2)] = None,
) -> Response:
    if not _administrator(session):
        return workspace.error(request, 403)
    if not _CODE.match(code):
        return workspace.error(request, 404)
    token = await workspace.access_token(session, request.url.path)
    current, version = await _current(workspace, token, code)
    return _procedure_page(
        request,
        workspace,
        session,
        current,
        ProcedureForm.of(current),
        version=version,
        notice=SAVED if saved else None,
    )


@router.post(PROCEDURES + "/{code}")
async def save_procedure(
    request: Request, workspace: WorkspaceDep, session: SignedIn, code: str
) -> Response:
    """Saved at intake with the administrator's token; intake's validation errors shown."""
    if not _administrator(session):
        return workspace.error(request, 403)
    if not _CODE.match(code):
        return workspace.error(request, 404)
    form = await request.form(max_files=0, max_fields=20 + 6 * MAX_ROWS)
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    if not workspace.portal.csrf_valid(request, fields.get("csrf_token")):
        return workspace.error(request, 400)
    token = await workspace.access_token(session, f"{PROCEDURES}/{code}")
    # The version the form was loaded with (its hidden field): intake stores the change only if
    # the procedure is still at it.
    loaded = fields.get("version", "")
    loaded_version = loaded if _VERSION.match(loaded) else None
    current, _ = await _current(workspace, token, code)
    entered = ProcedureForm.read(fields)
    procedure, errors = entered.procedure(current)

    def again(found: dict[str, str], general: list[str], status: int = 422) -> Response:
        return _procedure_page(
            request,
            workspace,
            session,
            current,
            entered,
            version=loaded_version,
            errors=found,
            general=general,
            status_code=status,
        )

    if errors:
        return again(errors, [])
    try:
        await workspace.apis.send_versioned(
            "PUT",
            _intake(workspace, f"/api/v1/admin/procedures/{path_segment(code)}"),
            token,
            body=procedure,
            if_match=loaded_version,
        )
    except ProcessingUnavailable:
        return again({}, [UNAVAILABLE], 503)
    except ProcessingRefused as refused:
        if refused.status in (401, 403):
            raise
        if refused.status in (412, 428):  # another administrator saved first: reload
            now, version = await _current(workspace, token, code)
            stored = ProcedureForm.of(now)
            return _procedure_page(
                request,
                workspace,
                session,
                now,
                stored,
                version=version,
                general=[CHANGED_MEANWHILE],
                unsaved=differences(stored, entered),
                status_code=409,
            )
        return again(*field_errors(refused.problem))
    return RedirectResponse(f"{PROCEDURES}/{code}?xong=1", status_code=303)


async def _current(workspace: Workspace, token: str, code: str) -> tuple[dict[str, Any], str]:
    """The procedure as stored, and its version (intake's `ETag`)."""
    found, version = await workspace.apis.send_versioned(
        "GET", _intake(workspace, f"/api/v1/procedures/{path_segment(code)}"), token
    )
    return found, version or ""


def _procedure_page(
    request: Request,
    workspace: Workspace,
    session: StaffSession,
    current: dict[str, Any],
    entered: ProcedureForm,
    *,
    version: str | None,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
    notice: str | None = None,
    unsaved: list[Difference] | None = None,
    status_code: int = 200,
) -> Response:
    errors = errors or {}
    summary = {name: _summary_text(name, message) for name, message in errors.items()}
    return workspace.render(
        request,
        "workspace/admin_procedure.html",
        {
            "procedure": current,
            "version": version or "",
            "unsaved": unsaved or [],
            "form": entered.with_blank_rows(),
            "errors": errors,
            "summary": summary,
            "general": general or [],
            "notice": notice,
            "levels": LEVELS,
            "time_units": TIME_UNITS,
            "labels": LABELS,
        },
        status_code=status_code,
        session=session,
    )


def _summary_text(name: str, message: str) -> str:
    """`fee_amount_1`: "Số tiền (đồng), dòng 2: ..." (the summary links to the field)."""
    found = re.fullmatch(r"(.+)_(\d+)", name)
    if found and found.group(1) in LABELS:
        return f"{LABELS[found.group(1)]}, dòng {int(found.group(2)) + 1}: {message}"
    return f"{LABELS.get(name, name)}: {message}"


# --- the working calendar -------------------------------------------------------------------------


@dataclass
class CalendarEntry:
    day: str = ""
    working: str = ""
    reason: str = ""


@router.get(CALENDAR)
async def calendar(
    request: Request,
    workspace: WorkspaceDep,
    session: SignedIn,
    year: Annotated[int | None, Query(alias="nam", ge=2000, le=2100)] = None,
    added: Annotated[str | None, Query(alias="xong", max_length=2)] = None,
) -> Response:
    """The year's announced days off and make-up working days, and the form to add one."""
    if not _administrator(session):
        return workspace.error(request, 403)
    token = await workspace.access_token(session, CALENDAR)
    return await _calendar_page(
        request,
        workspace,
        session,
        token,
        year or datetime.now(UTC).astimezone(VIETNAM).year,
        CalendarEntry(),
        notice=ADDED if added else None,
    )


@router.post(CALENDAR)
async def add_calendar_change(
    request: Request, workspace: WorkspaceDep, session: SignedIn
) -> Response:
    if not _administrator(session):
        return workspace.error(request, 403)
    form = await request.form(max_files=0, max_fields=10)
    fields = {name: value.strip() for name, value in form.items() if isinstance(value, str)}
    if not workspace.portal.csrf_valid(request, fields.get("csrf_token")):
        return workspace.error(request, 400)
    entered = CalendarEntry(
        fields.get("day", ""), fields.get("working", ""), fields.get("reason", "")
    )
    token = await workspace.access_token(session, CALENDAR)
    errors: dict[str, str] = {}
    day: date | None = None
    try:
        day = date.fromisoformat(entered.day)
    except ValueError:
        errors["day"] = "Nhập ngày theo dạng năm-tháng-ngày, ví dụ 2026-12-26."
    if entered.working not in ("1", "0"):
        errors["working"] = "Chọn ngày làm việc bù hoặc ngày nghỉ."
    if not entered.reason:
        errors["reason"] = "Nhập lý do, căn cứ (ví dụ số văn bản thông báo)."
    year = day.year if day else datetime.now(UTC).astimezone(VIETNAM).year
    general: list[str] = []
    if not errors and day is not None:
        body = {"day": day.isoformat(), "working": entered.working == "1", "reason": entered.reason}
        try:
            await _call(
                workspace,
                "POST",
                _processing(workspace, "/api/v1/calendar/changes"),
                token,
                body=body,
            )
        except ProcessingUnavailable:
            general = [UNAVAILABLE]
        except ProcessingRefused as refused:
            if refused.status in (401, 403):
                raise
            errors, general = field_errors(refused.problem)
        else:
            return RedirectResponse(f"{CALENDAR}?nam={year}&xong=1", status_code=303)
    return await _calendar_page(
        request,
        workspace,
        session,
        token,
        year,
        entered,
        errors=errors,
        general=general,
        status_code=503 if general == [UNAVAILABLE] else 422,
    )


async def _calendar_page(
    request: Request,
    workspace: Workspace,
    session: StaffSession,
    token: str,
    year: int,
    entered: CalendarEntry,
    *,
    errors: dict[str, str] | None = None,
    general: list[str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    changes = await _call(
        workspace, "GET", _processing(workspace, "/api/v1/calendar/changes"), token
    )
    days = sorted(
        (c for c in changes if str(c.get("day", "")).startswith(f"{year}-")),
        key=lambda c: str(c["day"]),
    )
    errors = errors or {}
    return workspace.render(
        request,
        "workspace/admin_calendar.html",
        {
            "year": year,
            "days": [{**c, "date": date.fromisoformat(str(c["day"]))} for c in days],
            "entered": entered,
            "errors": errors,
            "summary": {name: f"{LABELS.get(name, name)}: {m}" for name, m in errors.items()},
            "general": general or [],
            "notice": notice,
        },
        status_code=status_code,
        session=session,
    )
