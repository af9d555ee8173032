"""A local stand-in for the National Public Service Portal's sync API, speaking the protocol of
`services/notification/portal/adapters/client.py`, for development and tests.

    python -m devstack.simulators.portal --port 9098 [--username U --password P]

- `POST /api/auth/login` `{"username", "password"}` → `{"session_token", "expires_in"}`; 401 on
  wrong credentials. Sessions expire after `--session-ttl` seconds.
- `POST /api/dossiers` and `POST /api/dossiers/progress` with `Authorization: Bearer <token>`:
  401 without a valid session; 400 `{"errors": [...]}` when the payload breaks a rule; 409 for a
  step of a dossier it does not know; else 200 `{"accepted": true, "changed": bool}` — upserts
  by dossier code, and by (dossier code, step id), so a resend changes nothing.
- `GET /_admin/dossiers/{code}` (the dossier and its steps in first-received order),
  `GET /_admin/state`, `GET /_admin/requests` (every sync request and its answer);
  `POST /_admin/faults` `{"fail_next": 3, "status": 503, "hang_next": 1, "hang_seconds": 5,
  "on": ["dossier"]}` (the next N `/api` calls — of the kinds in `on`: login, dossier, step; all
  by default — fail, or hang and then proceed as if the answer were lost in transit);
  `POST /_admin/procedures` `{"unknown": ["1.004473"]}` (dossiers of these procedure codes are
  refused with 400, as the portal refuses codes missing from the national catalogue);
  `POST /_admin/sessions/expire`; `POST /_admin/reset`.

The validation is written here independently of the adapter's pydantic models (its own rules,
read from DOMAIN.md §6), so tests against it prove the adapter's payloads, not the models'
agreement with themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from devstack.simulators.common import serve
from shared.contracts.events import DOSSIER_CODE_PATTERN

DATE = re.compile(r"^\d{14}$")
CODE = re.compile(DOSSIER_CODE_PATTERN)
STATES = range(1, 11)
CHANNELS = (1, 2, 3)
OWNER_TYPES = (1, 2)

# field -> (required, kind); `list:<name>`: a list of objects with the fields LIST_ITEMS[name]
DOSSIER_FIELDS: dict[str, tuple[bool, str]] = {
    "MaHoSo": (True, "code"),
    "MaTTHC": (True, "str"),
    "TenTTHC": (False, "str"),
    "MaLinhVuc": (False, "str"),
    "TenLinhVuc": (False, "str"),
    "ChuHoSo": (True, "str"),
    "LoaiDoiTuong": (True, "owner_type"),
    "NgayNopHoSo": (True, "date"),
    "NgayTiepNhan": (False, "date"),
    "NgayHenTra": (False, "date"),
    "TrangThaiHoSo": (True, "state"),
    "NgayKetThucXuLy": (False, "date"),
    "NgayTra": (False, "date"),
    "KenhThucHien": (True, "channel"),
    "DonViXuLy": (True, "str"),
    "TaiLieuNop": (False, "list:TaiLieuNop"),
    "DanhSachLePhi": (False, "list:DanhSachLePhi"),
    "DanhSachHoSoBoSung": (False, "list:DanhSachHoSoBoSung"),
    "DanhSachGiayToKetQua": (False, "list:DanhSachGiayToKetQua"),
}
LIST_ITEMS: dict[str, dict[str, tuple[bool, str]]] = {
    "TaiLieuNop": {
        "MaGiayTo": (True, "str"),
        "TenTepDinhKem": (True, "str"),
        "DinhDang": (True, "str"),
        "KichThuoc": (True, "count"),
        "BoSung": (True, "flag"),
    },
    "DanhSachLePhi": {
        "TenPhiLePhi": (True, "str"),
        "MucPhi": (True, "count"),
        "DaThanhToan": (True, "flag"),
        "CacLanThanhToan": (False, "list:payments"),
    },
    "DanhSachHoSoBoSung": {
        "NgayYeuCauBoSung": (True, "date"),
        "GiayToYeuCau": (False, "strings"),
        "LyDo": (False, "str"),
        "NgayHenTraTruoc": (False, "date"),
        "NgayTiepNhanBoSung": (False, "date"),
        "NgayHenTraMoi": (False, "date"),
    },
    "DanhSachGiayToKetQua": {
        "MaGiayTo": (True, "str"),
        "TenGiayTo": (True, "str"),
        "DinhDang": (False, "str"),
    },
}
PAYMENT_FIELDS: dict[str, tuple[bool, str]] = {
    "SoTien": (True, "count"),
    "NgayThanhToan": (True, "date"),
    "MaGiaoDich": (True, "str"),
    "KenhThanhToan": (True, "str"),
}
STEP_FIELDS: dict[str, tuple[bool, str]] = {
    "MaHoSo": (True, "code"),
    "MaBuoc": (True, "str"),
    "NguoiXuLy": (True, "str"),
    "ThoiDiemXuLy": (True, "date"),
    "PhongBanXuLy": (True, "str"),
    "NoiDungXuLy": (True, "str"),
    "TrangThai": (True, "state"),
}


def _value_errors(name: str, kind: str, value: Any) -> list[str]:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if kind == "str":
        ok = isinstance(value, str) and 0 < len(value.strip()) and len(value) <= 2000
        return [] if ok else [f"{name}: chuỗi khác rỗng, tối đa 2000 ký tự (non-empty string)"]
    if kind == "code":
        ok = isinstance(value, str) and CODE.match(value) is not None
        return [] if ok else [f"{name}: mã hồ sơ không đúng định dạng (dossier code format)"]
    if kind == "date":
        if not isinstance(value, str) or not DATE.match(value):
            return [f"{name}: ngày phải có dạng yyyyMMddHHmmss"]
        try:
            datetime.strptime(value, "%Y%m%d%H%M%S")
        except ValueError:
            return [f"{name}: ngày không tồn tại (not a calendar date)"]
        return []
    if kind == "state":
        return [] if is_int(value) and value in STATES else [f"{name}: trạng thái 1–10"]
    if kind == "channel":
        return [] if is_int(value) and value in CHANNELS else [f"{name}: kênh 1, 2 hoặc 3"]
    if kind == "owner_type":
        return [] if is_int(value) and value in OWNER_TYPES else [f"{name}: đối tượng 1 hoặc 2"]
    if kind == "count":
        return [] if is_int(value) and value >= 0 else [f"{name}: số nguyên không âm"]
    if kind == "flag":
        return [] if is_int(value) and value in (0, 1) else [f"{name}: 0 hoặc 1"]
    if kind == "strings":
        ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
        return [] if ok else [f"{name}: danh sách chuỗi (list of strings)"]
    if kind.startswith("list:"):
        if not isinstance(value, list):
            return [f"{name}: phải là danh sách (must be a list)"]
        items = PAYMENT_FIELDS if kind == "list:payments" else LIST_ITEMS[kind[5:]]
        errors = []
        for index, item in enumerate(value):
            errors += _object_errors(f"{name}[{index}]", item, items)
        return errors
    raise AssertionError(kind)


def _object_errors(prefix: str, payload: Any, fields: dict[str, tuple[bool, str]]) -> list[str]:
    if not isinstance(payload, dict):
        return [f"{prefix}: phải là đối tượng JSON (must be an object)"]
    errors = [
        f"{prefix}.{k}: trường không được hỗ trợ (unknown field)"
        for k in payload.keys() - fields.keys()
    ]
    for name, (required, kind) in fields.items():
        if name not in payload or payload[name] is None:
            if required:
                errors.append(f"{prefix}.{name}: bắt buộc (required)")
            continue
        errors += _value_errors(f"{prefix}.{name}", kind, payload[name])
    return errors


def dossier_errors(payload: Any) -> list[str]:
    """Every rule a dossier message breaks (empty: valid)."""
    errors = _object_errors("hoSo", payload, DOSSIER_FIELDS)
    if errors:
        return errors
    state = payload["TrangThaiHoSo"]
    if state == 10 and not payload.get("NgayTra"):
        errors.append("NgayTra: bắt buộc khi đã trả kết quả (state 10 needs the returned date)")
    if state in (9, 10) and not payload.get("NgayKetThucXuLy"):
        errors.append("NgayKetThucXuLy: bắt buộc khi đã có kết quả (states 9, 10)")
    if state in (2, 4, 5, 6, 9, 10) and not payload.get("NgayTiepNhan"):
        errors.append("NgayTiepNhan: bắt buộc khi hồ sơ đã được tiếp nhận (received states)")
    received, submitted = payload.get("NgayTiepNhan"), payload["NgayNopHoSo"]
    if received and received < submitted:
        errors.append("NgayTiepNhan: không được trước ngày nộp (received before submitted)")
    if payload.get("NgayTra") and received and payload["NgayTra"] < received:
        errors.append("NgayTra: không được trước ngày tiếp nhận (returned before received)")
    return errors


def step_errors(payload: Any) -> list[str]:
    """Every rule a progress-step message breaks (empty: valid)."""
    return _object_errors("quaTrinh", payload, STEP_FIELDS)


@dataclass
class PortalState:
    username: str
    password: str
    session_ttl: float
    sessions: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    dossiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # code -> id -> step
    requests: list[dict[str, Any]] = field(default_factory=list)
    logins: int = 0
    fail_next: int = 0
    fail_status: int = 503
    hang_next: int = 0
    hang_seconds: float = 5.0
    fault_kinds: set[str] = field(default_factory=set)  # login, dossier, step; empty: all
    # Procedure codes the portal's national catalogue does not know (yet): dossiers refused.
    unknown_procedures: set[str] = field(default_factory=set)

    def snapshot(self) -> dict[str, Any]:
        return {
            "dossiers": self.dossiers,
            "steps": {code: list(steps.values()) for code, steps in self.steps.items()},
        }


def create_app(
    *, username: str = "dvc-most", password: str = "dev-portal-password", session_ttl: float = 900
) -> FastAPI:
    state = PortalState(username, password, session_ttl)
    app = FastAPI(title="Cổng Dịch vụ công quốc gia (simulator)")
    app.state.portal = state

    def log(kind: str, status: int, payload: Any = None) -> None:
        body = payload if isinstance(payload, dict) else {}
        state.requests.append(
            {
                "kind": kind,
                "status": status,
                "dossier_code": body.get("MaHoSo"),
                "step_id": body.get("MaBuoc"),
                "at": time.time(),
            }
        )

    async def injected_fault(kind: str) -> JSONResponse | None:
        if state.fault_kinds and kind not in state.fault_kinds:
            return None
        if state.fail_next > 0:
            state.fail_next -= 1
            log(kind, state.fail_status)
            return JSONResponse({"errors": ["injected fault"]}, status_code=state.fail_status)
        if state.hang_next > 0:
            state.hang_next -= 1
            await asyncio.sleep(state.hang_seconds)  # then carry on: the answer comes too late
        return None

    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip()
        expiry = state.sessions.get(token)
        return expiry is not None and time.monotonic() < expiry

    async def json_body(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            return None

    @app.post("/api/auth/login")
    async def login(request: Request) -> JSONResponse:
        body = await json_body(request)  # read first: a hung call is still stored, late
        if (fault := await injected_fault("login")) is not None:
            return fault
        ok = (
            isinstance(body, dict)
            and secrets.compare_digest(str(body.get("username", "")), state.username)
            and secrets.compare_digest(str(body.get("password", "")), state.password)
        )
        if not ok:
            log("login", 401)
            return JSONResponse({"errors": ["sai tài khoản (bad credentials)"]}, status_code=401)
        token = secrets.token_urlsafe(24)
        state.sessions[token] = time.monotonic() + state.session_ttl
        state.logins += 1
        log("login", 200)
        return JSONResponse({"session_token": token, "expires_in": state.session_ttl})

    @app.post("/api/dossiers")
    async def dossier(request: Request) -> JSONResponse:
        body = await json_body(request)  # read first: a hung call is still stored, late
        if (fault := await injected_fault("dossier")) is not None:
            return fault
        if not authorised(request):
            log("dossier", 401)
            return JSONResponse(
                {
                    "errors": [
                        "phiên làm việc không hợp lệ hoặc đã hết hạn (missing or expired session)"
                    ]
                },
                status_code=401,
            )
        errors = dossier_errors(body)
        if not errors and body["MaTTHC"] in state.unknown_procedures:
            errors = [f"MaTTHC: {body['MaTTHC']} không có trong CSDL quốc gia về TTHC"]
        if errors:
            log("dossier", 400, body)
            return JSONResponse({"errors": errors}, status_code=400)
        changed = state.dossiers.get(body["MaHoSo"]) != body
        state.dossiers[body["MaHoSo"]] = body
        log("dossier", 200, body)
        return JSONResponse({"accepted": True, "changed": changed})

    @app.post("/api/dossiers/progress")
    async def progress(request: Request) -> JSONResponse:
        body = await json_body(request)  # read first: a hung call is still stored, late
        if (fault := await injected_fault("step")) is not None:
            return fault
        if not authorised(request):
            log("step", 401)
            return JSONResponse(
                {
                    "errors": [
                        "phiên làm việc không hợp lệ hoặc đã hết hạn (missing or expired session)"
                    ]
                },
                status_code=401,
            )
        if errors := step_errors(body):
            log("step", 400, body)
            return JSONResponse({"errors": errors}, status_code=400)
        code = body["MaHoSo"]
        if code not in state.dossiers:
            log("step", 409, body)
            return JSONResponse(
                {"errors": ["hồ sơ chưa được đồng bộ (unknown dossier: send it first)"]},
                status_code=409,
            )
        steps = state.steps.setdefault(code, {})
        changed = steps.get(body["MaBuoc"]) != body
        steps[body["MaBuoc"]] = body
        log("step", 200, body)
        return JSONResponse({"accepted": True, "changed": changed})

    @app.get("/_admin/dossiers/{code}")
    async def admin_dossier(code: str) -> JSONResponse:
        if code not in state.dossiers:
            return JSONResponse({"errors": ["not found"]}, status_code=404)
        steps = list(state.steps.get(code, {}).values())
        return JSONResponse({"dossier": state.dossiers[code], "steps": steps})

    @app.get("/_admin/state")
    async def admin_state() -> dict[str, Any]:
        return state.snapshot()

    @app.get("/_admin/requests")
    async def admin_requests() -> dict[str, Any]:
        return {"requests": state.requests, "logins": state.logins}

    @app.post("/_admin/faults")
    async def admin_faults(request: Request) -> dict[str, Any]:
        body = await json_body(request) or {}
        state.fail_next = int(body.get("fail_next", 0))
        state.fail_status = int(body.get("status", 503))
        state.hang_next = int(body.get("hang_next", 0))
        state.hang_seconds = float(body.get("hang_seconds", state.hang_seconds))
        state.fault_kinds = set(body.get("on", []))
        return {"fail_next": state.fail_next, "hang_next": state.hang_next}

    @app.post("/_admin/procedures")
    async def admin_procedures(request: Request) -> dict[str, list[str]]:
        body = await json_body(request) or {}
        state.unknown_procedures = set(body.get("unknown", []))
        return {"unknown": sorted(state.unknown_procedures)}

    @app.post("/_admin/sessions/expire")
    async def admin_expire() -> dict[str, int]:
        expired = len(state.sessions)
        state.sessions.clear()
        return {"expired": expired}

    @app.post("/_admin/reset")
    async def admin_reset() -> dict[str, bool]:
        state.dossiers.clear()
        state.steps.clear()
        state.requests.clear()
        state.sessions.clear()
        state.unknown_procedures.clear()
        state.fail_next = state.hang_next = 0
        return {"reset": True}

    return app


def main(argv: list[str] | None = None) -> None:
    arguments = argparse.ArgumentParser(description="National Public Service Portal simulator")
    arguments.add_argument("--host", default="127.0.0.1")
    arguments.add_argument("--port", type=int, default=9098, help="HTTP port")
    arguments.add_argument("--username", default="dvc-most")
    arguments.add_argument("--password", default="dev-portal-password")
    arguments.add_argument("--session-ttl", type=float, default=900.0, help="seconds")
    args = arguments.parse_args(argv)
    app = create_app(username=args.username, password=args.password, session_ttl=args.session_ttl)
    serve(app, args.host, args.port)


if __name__ == "__main__":
    main()
