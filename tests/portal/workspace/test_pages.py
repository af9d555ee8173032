"""The workspace's pages against stand-ins of the provider and of processing (httpx.MockTransport):
the sign-in with PKCE and the tokens kept server-side, refresh, logout at the provider, the
officer's token on every call to processing, and processing's refusals as pages."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.portal.main import create_app
from services.portal.settings import PortalSettings

ISSUER = "http://idp.test/realms/dvc"
PORTAL = "http://portal.test"
CODE = "000.00.21.G12-261205-0001"
OTHER_UNIT = "000.00.21.G12-261205-0009"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def case(state: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "code": CODE,
        "procedure_code": "1.004940",
        "procedure_name": "Đăng ký nhãn hiệu",
        "unit_code": "SHTT",
        "level": 4,
        "channel": 2,
        "state": state,
        "applicant_name": "Nguyễn Văn An",
        "assignee": None,
        "fee_vnd": 150000,
        "processing_time": {"value": 15, "unit": "working_days"},
        "cutoff_15h": True,
        "fee_starts_clock": False,
        "submitted_at": "2026-12-05T02:00:00Z",
        "received_at": None,
        "paid_at": None,
        "clock_started_at": None,
        "due_at": None,
        "due_history": [],
        "pauses": [],
        "extensions": [],
        "start_processing_at": None,
        "requested_documents": [],
        "payment_amount_vnd": None,
        "approved": False,
        "result_document": None,
        "return_method": None,
        "warnings_emitted": [],
        "history": [
            {
                "at": "2026-12-05T02:00:00Z",
                "action": "submit",
                "actor": "citizen",
                "unit_code": "SHTT",
                "from_state": None,
                "to_state": 1,
                "note": None,
            }
        ],
        "overdue": False,
        "allowed_actions": ["receive", "refuse_intake", "request_supplement", "assign"],
        **fields,
    }


@dataclass
class Provider:
    """A stand-in OpenID Connect provider: discovery, keys, the token endpoint (authorisation
    code with PKCE, refresh)."""

    authorisations: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> request
    issued: int = 0
    refuse_refresh: bool = False
    expires_in: int = 300
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    token_authorisations: list[str] = field(default_factory=list)

    def authorise(self, location: str) -> str:
        """What the login page does: remember the request, answer a code."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        code = f"code-{len(self.authorisations)}"
        self.authorisations[code] = query
        return code

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/realms/dvc/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
                    "token_endpoint": f"{ISSUER}/protocol/openid-connect/token",
                    "jwks_uri": f"{ISSUER}/protocol/openid-connect/certs",
                    "end_session_endpoint": f"{ISSUER}/protocol/openid-connect/logout",
                    "code_challenge_methods_supported": ["S256"],
                },
            )
        if path == "/realms/dvc/protocol/openid-connect/certs":
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
            return httpx.Response(200, json={"keys": [{**jwk, "kid": "k1", "alg": "RS256"}]})
        if path == "/realms/dvc/protocol/openid-connect/token":
            form = parse_qs(request.content.decode())
            self.token_requests.append(form)
            self.token_authorisations.append(request.headers.get("authorization", ""))
            if form["grant_type"] == ["authorization_code"]:
                asked = self.authorisations.pop(form["code"][0], None)
                verifier = form.get("code_verifier", [""])[0]
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                if asked is None or challenge.decode().rstrip("=") != asked["code_challenge"]:
                    return httpx.Response(400, json={"error": "invalid_grant"})
                return httpx.Response(200, json=self.tokens(asked["nonce"], asked["username"]))
            if form["grant_type"] == ["refresh_token"]:
                if self.refuse_refresh:
                    return httpx.Response(400, json={"error": "invalid_grant"})
                return httpx.Response(200, json=self.tokens(None, "cv.shtt", id_token=False))
        return httpx.Response(404)

    def tokens(self, nonce: str | None, username: str, id_token: bool = True) -> dict[str, Any]:
        self.issued += 1
        unit = "TDC" if username.endswith("tdc") else "SHTT"
        roles = ["unit_head", "officer"] if username.startswith("ld.") else ["officer"]
        if username.startswith("mc."):
            roles = ["counter_officer"]
        answer = {
            "access_token": f"access-{self.issued}",
            "refresh_token": f"refresh-{self.issued}",
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if id_token:
            claims = {
                "iss": ISSUER,
                "aud": "dvc-workspace",
                "sub": f"id-{username}",
                "preferred_username": username,
                "name": "Trần Thị Bình",
                "unit": unit,
                "roles": roles,
                "nonce": nonce,
                "iat": int(time.time()),
                "exp": int(time.time()) + 300,
            }
            answer["id_token"] = jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})
        return answer


SUBMITTED = {
    "dossier_code": CODE,
    "procedure_code": "1.004940",
    "procedure_name": "Đăng ký nhãn hiệu",
    "unit_code": "SHTT",
    "unit_name": "Cục Sở hữu trí tuệ",
    "level": 4,
    "channel": 2,
    "applicant": {"kind": "person", "name": "Nguyễn Văn An", "identifier": "001099012345"},
    "contact": {"email": "an@example.vn", "phone": "0912345678"},
    "form": {"mark": {"name": "Sao Mai", "classes": [9, 35]}, "colour": None},
    "documents": [
        {
            "document_type": "to_khai",
            "file_name": "to-khai.pdf",
            "content_type": "application/pdf",
            "size_bytes": 2048,
            "storage_id": "65f0a1b2c3d4e5f6a7b8c9d0",
        }
    ],
    "fee_vnd": 150000,
    "submitted_at": "2026-12-05T02:00:00Z",
    "state": 2,
    "state_label": "Đã tiếp nhận",
}


@dataclass
class Intake:
    """A stand-in of intake's staff API (the dossier as submitted, a document, the counter)."""

    tokens: list[str] = field(default_factory=list)
    down: bool = False
    other_unit: bool = False
    recorded: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.tokens.append(request.headers.get("authorization", ""))
        path = request.url.path
        if self.down:
            return httpx.Response(503)
        if path == "/api/v1/procedures/1.004940":
            return httpx.Response(200, json=PROCEDURE)
        if path == "/api/v1/dossiers/000.00.21.G12-261205-0042/receipt":
            assert request.headers["x-tracking-secret"] == "s3cret-s3cret"
            return httpx.Response(
                200,
                json={
                    "dossier_code": "000.00.21.G12-261205-0042",
                    "procedure_name": "Đăng ký nhãn hiệu",
                    "unit_name": "Cục Sở hữu trí tuệ",
                    "applicant_name": "Nguyễn Văn An",
                    "applicant_identifier_masked": "0010******45",
                    "channel": 3,
                    "submitted_at": "2026-12-05T02:00:00Z",
                    "appointment_at": "2026-12-26T10:00:00Z",
                    "documents": [["Tờ khai", "to-khai.pdf"]],
                    "fee_vnd": 150000,
                },
            )
        if path == f"/api/v1/staff/dossiers/{CODE}":
            return httpx.Response(200, json=SUBMITTED)
        if path == f"/api/v1/staff/dossiers/{CODE}/documents/65f0a1b2c3d4e5f6a7b8c9d0":
            return httpx.Response(
                200,
                content=b"%PDF-1.4 to khai",
                headers={
                    "content-type": "application/pdf",
                    "content-disposition": 'inline; filename="to-khai.pdf"',
                },
            )
        if path == "/api/v1/counter/dossiers" and request.method == "POST" and self.other_unit:
            return httpx.Response(
                403,
                json={"title": "Hồ sơ thuộc đơn vị khác (dossier of another unit)", "status": 403},
            )
        if path == "/api/v1/counter/dossiers" and request.method == "POST":
            self.recorded.append((dict(request.headers), request.read()))
            return httpx.Response(
                201,
                json={
                    "dossier_code": "000.00.21.G12-261205-0042",
                    "tracking_secret": "s3cret-s3cret",
                    "state": 2,
                    "procedure_code": "1.004940",
                    "submitted_at": "2026-12-05T02:00:00Z",
                    "due_at": None,
                },
            )
        return httpx.Response(404, json={"title": "not found"})


@dataclass
class Reporting:
    tokens: list[str] = field(default_factory=list)
    asked: list[dict[str, str]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.tokens.append(request.headers.get("authorization", ""))
        self.asked.append(dict(request.url.params))
        if request.url.path == "/api/v1/reports/quarterly.csv":
            return httpx.Response(
                200,
                content=b"unit,received\nSHTT,12\n",
                headers={
                    "content-type": "text/csv; charset=utf-8",
                    "content-disposition": 'attachment; filename="bao-cao.csv"',
                },
            )
        if request.url.path == "/api/v1/reports/quarterly":
            return httpx.Response(200, json=REPORT)
        return httpx.Response(404)


SECTION: dict[str, Any] = {
    "unit_code": "SHTT",
    "unit_name": "Cục Sở hữu trí tuệ",
    "counts": {"received": 40, "online": 30, "counter": 8, "post": 2, "in_progress": 12},
    "indicators": [
        {
            "code": "on_time_rate",
            "name": "Tỷ lệ hồ sơ giải quyết đúng hạn",
            "percent": 87.5,
            "numerator": 35,
            "denominator": 40,
            "formula": "",
            "target_percent": 95.0,
        },
        {
            "code": "online_payment_rate",
            "name": "Tỷ lệ thanh toán trực tuyến",
            "percent": None,
            "numerator": 0,
            "denominator": 0,
            "formula": "",
        },
    ],
}
REPORT: dict[str, Any] = {"quarters": ["2026-Q4"], "scope": "SHTT", "units": [SECTION]}
PROCEDURE: dict[str, Any] = {
    "code": "1.004940",
    "name": "Đăng ký nhãn hiệu",
    "unit_code": "SHTT",
    "unit_name": "Cục Sở hữu trí tuệ",
    "field": "Sở hữu trí tuệ",
    "level": 4,
    "documents": [
        {"code": "to_khai", "name": "Tờ khai", "mandatory": True, "formats": ["pdf"]},
        {"code": "mau_nhan", "name": "Mẫu nhãn", "mandatory": False, "formats": ["png", "jpg"]},
    ],
}


@dataclass
class Processing:
    """A stand-in of processing's officer API, recording the tokens it is called with."""

    tokens: list[str] = field(default_factory=list)
    state: int = 1
    conflict: bool = False
    items: list[dict[str, Any]] = field(default_factory=list)
    acted: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    uploads: list[tuple[str, bytes]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)  # the case's, over `case()`'s
    intake: Intake = field(default_factory=lambda: Intake())
    reporting: Reporting = field(default_factory=lambda: Reporting())
    next_cursor: str | None = None
    counts: dict[str, Any] = field(
        default_factory=lambda: {
            "unit_code": "SHTT",
            "total": 12,
            "states": [{"state": 2, "count": 5}, {"state": 4, "count": 7}],
            "as_of": "2026-12-05T02:00:00Z",
        }
    )

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.port == 8001:
            return self.intake.handle(request)
        if request.url.port == 8004:
            return self.reporting.handle(request)
        self.tokens.append(request.headers.get("authorization", ""))
        path = request.url.path
        if path == f"/api/v1/cases/{CODE}/result" and request.method == "POST":
            self.uploads.append((request.headers["content-type"], request.read()))
            self.state = 9
            return httpx.Response(200, json=case(9))
        if path == "/api/v1/cases":
            self.queries.append(dict(request.url.params.multi_items()))
            channel = request.url.params.get("channel")
            items = [i for i in self.items if channel is None or str(i["channel"]) == channel]
            return httpx.Response(200, json={"items": items, "next_cursor": self.next_cursor})
        if path == "/api/v1/case-counts":
            self.queries.append(dict(request.url.params.multi_items()))
            return httpx.Response(200, json=self.counts)
        if path == f"/api/v1/cases/{OTHER_UNIT}":
            return httpx.Response(
                403,
                json={
                    "title": "Không có quyền (forbidden)",
                    "detail": "Hồ sơ thuộc đơn vị khác (this dossier belongs to another unit)",
                },
            )
        if path == f"/api/v1/cases/{CODE}":
            return httpx.Response(200, json=case(self.state, **self.fields))
        if path.startswith(f"/api/v1/cases/{CODE}/") and request.method == "POST":
            action = path.rsplit("/", 1)[-1]
            if self.conflict:
                return httpx.Response(409, json={"title": "transition not allowed"})
            body = httpx.Response(200, content=request.content).json()
            self.acted.append((action, body, request.headers["idempotency-key"]))
            self.state = 4
            return httpx.Response(200, json=case(4))
        return httpx.Response(404, json={"title": "not found"})


@dataclass
class Workspace:
    client: httpx.AsyncClient
    provider: Provider
    processing: Processing

    async def sign_in(self, username: str = "cv.shtt") -> httpx.Response:
        started = await self.client.get("/can-bo/dang-nhap")
        assert started.status_code == 302
        location = started.headers["location"]
        code = self.provider.authorise(location)
        self.provider.authorisations[code]["username"] = username
        state = parse_qs(urlsplit(location).query)["state"][0]
        return await self.client.get(f"/can-bo/dang-nhap/xong?code={code}&state={state}")


def workspace_client(**settings: Any) -> Workspace:
    provider, processing = Provider(), Processing()
    app = create_app(
        PortalSettings(
            oidc_issuer_url=ISSUER,
            oidc_redirect_base_url=PORTAL,
            **settings,
        ),
        processing_transport=httpx.MockTransport(processing.handle),
        intake_transport=httpx.MockTransport(processing.intake.handle),
        provider_transport=httpx.MockTransport(provider.handle),
    )
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 5000))
    client = httpx.AsyncClient(transport=transport, base_url=PORTAL)
    return Workspace(client, provider, processing)


@pytest.fixture
async def workspace() -> AsyncIterator[Workspace]:
    ws = workspace_client()
    async with ws.client:
        yield ws


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


# --- sign-in -------------------------------------------------------------------------------------


async def test_the_home_page_offers_sign_in(workspace: Workspace) -> None:
    page = await workspace.client.get("/can-bo")
    assert page.status_code == 200
    assert 'href="/can-bo/dang-nhap"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "form-action 'self' http://idp.test;" in page.headers["content-security-policy"]
    assert workspace.processing.tokens == []


async def test_sign_in_uses_pkce_and_keeps_the_tokens_server_side(workspace: Workspace) -> None:
    started = await workspace.client.get("/can-bo/dang-nhap?tiep=/can-bo/ho-so/" + CODE)
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert started.headers["location"].startswith(f"{ISSUER}/protocol/openid-connect/auth?")
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["redirect_uri"] == [f"{PORTAL}/can-bo/dang-nhap/xong"]
    assert query["nonce"] and query["state"] and query["scope"] == ["openid"]
    before = workspace.client.cookies["workspace_session"]
    cookie = started.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie

    code = workspace.provider.authorise(started.headers["location"])
    workspace.provider.authorisations[code]["username"] = "cv.shtt"
    back = await workspace.client.get(
        f"/can-bo/dang-nhap/xong?code={code}&state={query['state'][0]}"
    )
    assert back.status_code == 303 and back.headers["location"] == f"/can-bo/ho-so/{CODE}"
    after = workspace.client.cookies["workspace_session"]
    assert after != before  # a new session id once signed in
    # The cookie is a signed reference: no token in it, not even encoded.
    assert "access" not in base64.urlsafe_b64decode(after.split(".")[0] + "==").decode()
    assert len(after) < 120
    # The code went to the token endpoint with the PKCE verifier and the client's secret.
    assert workspace.provider.token_requests[-1]["code_verifier"]
    basic = base64.b64encode(b"dvc-workspace:dvc-workspace-dev-secret").decode()
    assert workspace.provider.token_authorisations[-1] == f"Basic {basic}"

    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 200
    assert "Trần Thị Bình · Đơn vị SHTT · Chuyên viên" in page.text
    assert workspace.processing.tokens == ["Bearer access-1"]


async def test_a_callback_with_another_state_is_refused(workspace: Workspace) -> None:
    started = await workspace.client.get("/can-bo/dang-nhap")
    code = workspace.provider.authorise(started.headers["location"])
    workspace.provider.authorisations[code]["username"] = "cv.shtt"
    back = await workspace.client.get(f"/can-bo/dang-nhap/xong?code={code}&state=forged")
    assert back.status_code == 400
    assert "Đăng nhập không thành công" in back.text
    assert (await workspace.client.get("/can-bo")).text.count("dang-nhap") >= 1
    assert workspace.processing.tokens == []


async def test_a_callback_without_a_session_asks_to_sign_in_again(workspace: Workspace) -> None:
    back = await workspace.client.get("/can-bo/dang-nhap/xong?code=x&state=y")
    assert back.status_code == 400 and "Phiên làm việc đã kết thúc" in back.text


async def test_the_provider_refusing_sign_in_is_shown(workspace: Workspace) -> None:
    started = await workspace.client.get("/can-bo/dang-nhap")
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    back = await workspace.client.get(f"/can-bo/dang-nhap/xong?error=access_denied&state={state}")
    assert back.status_code == 400 and "Đăng nhập không thành công" in back.text


async def test_pages_need_a_session_and_come_back_after_sign_in(workspace: Workspace) -> None:
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 303
    assert page.headers["location"] == f"/can-bo/dang-nhap?tiep=%2Fcan-bo%2Fho-so%2F{CODE}"


async def test_an_unsafe_next_page_is_ignored(workspace: Workspace) -> None:
    started = await workspace.client.get("/can-bo/dang-nhap?tiep=https://evil.test/")
    code = workspace.provider.authorise(started.headers["location"])
    workspace.provider.authorisations[code]["username"] = "cv.shtt"
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    back = await workspace.client.get(f"/can-bo/dang-nhap/xong?code={code}&state={state}")
    assert back.headers["location"] == "/can-bo"


# --- tokens --------------------------------------------------------------------------------------


async def test_an_expiring_access_token_is_refreshed_first(workspace: Workspace) -> None:
    workspace.provider.expires_in = 10  # under the refresh margin: stale at once
    await workspace.sign_in()
    await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert workspace.processing.tokens == ["Bearer access-2"]
    refresh = workspace.provider.token_requests[-1]
    assert refresh["grant_type"] == ["refresh_token"] and refresh["refresh_token"] == ["refresh-1"]


async def test_a_refused_refresh_ends_the_session(workspace: Workspace) -> None:
    workspace.provider.expires_in = 10
    await workspace.sign_in()
    workspace.provider.refuse_refresh = True
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 303 and page.headers["location"].startswith("/can-bo/dang-nhap")
    assert workspace.processing.tokens == []
    home = await workspace.client.get("/can-bo")
    assert 'href="/can-bo/dang-nhap"' in home.text  # signed out


async def test_logout_ends_the_session_here_and_at_the_provider(workspace: Workspace) -> None:
    await workspace.sign_in()
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    refused = await workspace.client.post("/can-bo/dang-xuat", data={})
    assert refused.status_code == 400  # no CSRF token
    out = await workspace.client.post("/can-bo/dang-xuat", data={"csrf_token": csrf(page.text)})
    assert out.status_code == 303
    location = urlsplit(out.headers["location"])
    query = parse_qs(location.query)
    assert out.headers["location"].startswith(f"{ISSUER}/protocol/openid-connect/logout?")
    assert query["id_token_hint"][0].count(".") == 2
    assert query["post_logout_redirect_uri"] == [f"{PORTAL}/can-bo/da-dang-xuat"]
    assert query["client_id"] == ["dvc-workspace"]
    assert 'workspace_session=""' in out.headers["set-cookie"]
    back = await workspace.client.get("/can-bo/da-dang-xuat")
    assert "Bạn đã đăng xuất." in back.text
    again = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert again.status_code == 303  # the server-side session is gone


# --- pages ---------------------------------------------------------------------------------------


async def test_the_worklist_shows_processings_page_with_badges_and_counts(
    workspace: Workspace,
) -> None:
    workspace.processing.items = [
        {
            "code": CODE,
            "procedure_code": "1.004940",
            "procedure_name": "Đăng ký nhãn hiệu",
            "unit_code": "SHTT",
            "level": 4,
            "channel": 2,
            "state": 4,
            "applicant_name": "Nguyễn Văn An",
            "assignee": None,
            "submitted_at": "2026-01-05T02:00:00Z",
            "received_at": "2026-01-05T02:00:00Z",
            "due_at": "2026-01-26T10:00:00Z",
            "online": True,
            "overdue": True,
        },
        {
            "code": OTHER_UNIT,
            "procedure_code": "1.004940",
            "procedure_name": "Đăng ký nhãn hiệu",
            "unit_code": "SHTT",
            "level": 4,
            "channel": 1,
            "state": 2,
            "applicant_name": "Công ty A",
            "assignee": None,
            "submitted_at": "2099-01-05T02:00:00Z",
            "received_at": "2099-01-05T02:00:00Z",
            "due_at": "2099-01-26T10:00:00Z",
            "online": False,
            "overdue": False,
        },
    ]
    await workspace.sign_in()
    page = await workspace.client.get("/can-bo?trang-thai=4&trang-thai=99&thu-tuc=1.004940")
    assert page.status_code == 200
    assert page.text.index(CODE) < page.text.index(OTHER_UNIT)
    assert 'class="badge deadline-overdue">Quá hạn' in page.text
    # The unit's counts per state, from processing (not the page's), each a link to its filter.
    assert "theo trạng thái (theo bộ lọc kênh, thủ tục): 12</h2>" in page.text
    assert '<dt>Đang xử lý</dt><dd><a href="/can-bo?trang-thai=4&amp;thu-tuc=1.004940"' in (
        page.text
    )
    assert "<dt>Đã tiếp nhận</dt>" in page.text and ">5</a>" in page.text
    assert workspace.processing.tokens == ["Bearer access-1", "Bearer access-1"]
    counts, listed = sorted(workspace.processing.queries, key=len)
    assert counts == {"procedure": "1.004940"}
    assert listed == {"limit": "25", "state": "4", "procedure": "1.004940"}

    workspace.processing.queries.clear()
    workspace.processing.next_cursor = "c2"
    only_counter = await workspace.client.get("/can-bo?kenh=1")
    assert OTHER_UNIT in only_counter.text and f">{CODE}<" not in only_counter.text
    # The channel filter is processing's (an index serves it), as is the next page's cursor.
    assert {"limit": "25", "channel": "1"} in workspace.processing.queries
    assert {"channel": "1"} in workspace.processing.queries
    assert 'href="/can-bo?kenh=1&amp;sau=c2" rel="next"' in only_counter.text
    following = await workspace.client.get("/can-bo?kenh=1&sau=c2")
    assert following.status_code == 200 and 'href="/can-bo?kenh=1">Về trang đầu' in (following.text)
    assert {"limit": "25", "channel": "1", "cursor": "c2"} in workspace.processing.queries


async def test_search_by_code_opens_the_dossier_or_says_it_is_not_found(
    workspace: Workspace,
) -> None:
    await workspace.sign_in()
    found = await workspace.client.get(f"/can-bo?ma={CODE}")
    assert found.status_code == 303 and found.headers["location"] == f"/can-bo/ho-so/{CODE}"
    missing = await workspace.client.get("/can-bo?ma=000.00.21.G12-261205-7777")
    assert missing.status_code == 200
    assert "Không tìm thấy hồ sơ có mã “000.00.21.G12-261205-7777”" in missing.text


async def test_another_units_dossier_is_a_clear_403(workspace: Workspace) -> None:
    await workspace.sign_in()
    page = await workspace.client.get(f"/can-bo/ho-so/{OTHER_UNIT}")
    assert page.status_code == 403
    assert "Không có quyền truy cập" in page.text and "đơn vị khác" in page.text


async def test_the_dossier_offers_what_the_lifecycle_and_the_role_allow(
    workspace: Workspace,
) -> None:
    await workspace.sign_in()
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert "Tiếp nhận hồ sơ" in page.text and "Không tiếp nhận" in page.text
    assert "Phân công xử lý" not in page.text  # the unit head's step
    assert "15 ngày làm việc" in page.text


async def test_receive_calls_processing_with_the_officers_token_and_a_key(
    workspace: Workspace,
) -> None:
    await workspace.sign_in()
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    key = re.search(r'name="idempotency_key" value="([^"]+-receive)"', page.text)
    assert key
    done = await workspace.client.post(
        f"/can-bo/ho-so/{CODE}/receive",
        data={"csrf_token": csrf(page.text), "idempotency_key": key.group(1), "note": "Hợp lệ"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/can-bo/ho-so/{CODE}?xong=receive"
    assert workspace.processing.acted == [("receive", {"note": "Hợp lệ"}, key.group(1))]
    assert workspace.processing.tokens[-1] == "Bearer access-1"
    shown = await workspace.client.get(done.headers["location"])
    assert "Đã tiếp nhận hồ sơ." in shown.text


async def test_a_conflict_says_so_and_shows_the_current_state(workspace: Workspace) -> None:
    await workspace.sign_in()
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    workspace.processing.conflict = True
    answer = await workspace.client.post(
        f"/can-bo/ho-so/{CODE}/receive", data={"csrf_token": csrf(page.text)}
    )
    assert answer.status_code == 409
    assert "hồ sơ vừa được cập nhật" in answer.text


async def test_an_action_form_is_checked_before_processing_is_called(
    workspace: Workspace,
) -> None:
    await workspace.sign_in()
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    answer = await workspace.client.post(
        f"/can-bo/ho-so/{CODE}/request-supplement",
        data={"csrf_token": csrf(page.text), "reason": "Thiếu chữ ký"},
    )
    assert answer.status_code == 422
    assert "Vui lòng nhập giấy tờ cần bổ sung." in answer.text
    assert ">Thiếu chữ ký</textarea>" in answer.text  # what was entered is kept
    assert workspace.processing.acted == []
    forged = await workspace.client.post(f"/can-bo/ho-so/{CODE}/receive", data={})
    assert forged.status_code == 400 and workspace.processing.acted == []


# --- settings ------------------------------------------------------------------------------------


def test_production_refuses_the_development_client_secret() -> None:
    production = {"environment": "production", "cookie_secure": True, "secret_key": "s" * 40}
    with pytest.raises(ValueError, match="OIDC_CLIENT_SECRET"):
        PortalSettings(**production, oidc_client_secret="dvc-workspace-dev-secret")
    with pytest.raises(ValueError, match="https"):
        PortalSettings(**production, oidc_client_secret="x" * 40)
    PortalSettings(
        **production,
        oidc_client_secret="x" * 40,
        oidc_issuer_url="https://sso.most.gov.vn/realms/dvc",
        oidc_redirect_base_url="https://dichvucong.most.gov.vn",
    )


async def test_without_a_client_secret_production_has_no_workspace() -> None:
    ws = workspace_client(environment="production", cookie_secure=True, secret_key="s" * 40)
    async with ws.client:
        page = await ws.client.get("https://portal.test/can-bo")
        assert page.status_code == 503
        assert "chưa được cấu hình" in page.text
        assert (await ws.client.get("https://portal.test/can-bo/dang-nhap")).status_code == 503


# --- the dossier as submitted, documents, the result -------------------------------------------


async def test_the_dossier_shows_the_applicant_contact_form_and_documents_from_intake(
    workspace: Workspace,
) -> None:
    await workspace.sign_in()
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 200
    for shown in ("001099012345", "an@example.vn", "0912345678", "Sao Mai", "9, 35"):
        assert shown in page.text
    assert "<td>mark.name</td><td>Sao Mai</td>" in page.text
    link = f'href="/can-bo/ho-so/{CODE}/tai-lieu/65f0a1b2c3d4e5f6a7b8c9d0" download>to-khai.pdf'
    assert link in page.text
    # Intake is called with the officer's own token, as processing is.
    assert workspace.processing.intake.tokens == ["Bearer access-1"]

    document = await workspace.client.get(f"/can-bo/ho-so/{CODE}/tai-lieu/65f0a1b2c3d4e5f6a7b8c9d0")
    assert document.status_code == 200 and document.content == b"%PDF-1.4 to khai"
    assert document.headers["content-disposition"] == 'attachment; filename="to-khai.pdf"'
    assert document.headers["content-type"] == "application/pdf"
    assert document.headers["cache-control"] == "private, no-store"
    missing = await workspace.client.get(f"/can-bo/ho-so/{CODE}/tai-lieu/0000")
    assert missing.status_code == 404
    assert workspace.processing.intake.tokens[1:] == ["Bearer access-1"] * 2


async def test_the_dossier_page_stays_up_without_intake(workspace: Workspace) -> None:
    workspace.processing.intake.down = True
    await workspace.sign_in()
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert page.status_code == 200
    assert "Chưa lấy được thông tin người nộp" in page.text
    assert "Tiếp nhận hồ sơ" in page.text  # the actions are processing's


async def test_the_result_is_uploaded_once_approved(workspace: Workspace) -> None:
    await workspace.sign_in()
    workspace.processing.state = 4
    workspace.processing.fields = {
        "allowed_actions": ["issue_result", "request_supplement", "extend"],
        "approved": True,
    }
    page = await workspace.client.get(f"/can-bo/ho-so/{CODE}")
    assert 'enctype="multipart/form-data"' in page.text
    assert 'id="issue-result-file" name="file" type="file"' in page.text
    empty = await workspace.client.post(
        f"/can-bo/ho-so/{CODE}/issue-result", data={"csrf_token": csrf(page.text)}
    )
    assert empty.status_code == 422
    assert "Vui lòng chọn tệp văn bản kết quả đã ký." in empty.text
    assert workspace.processing.uploads == []

    done = await workspace.client.post(
        f"/can-bo/ho-so/{CODE}/issue-result",
        data={"csrf_token": csrf(page.text), "note": "Đã ký số", "idempotency_key": "k-1"},
        files={"file": ("quyet-dinh.pdf", b"%PDF-1.7 ket qua", "application/pdf")},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/can-bo/ho-so/{CODE}?xong=issue-result"
    content_type, body = workspace.processing.uploads[0]
    assert content_type.startswith("multipart/form-data")
    assert b'filename="quyet-dinh.pdf"' in body and b"%PDF-1.7 ket qua" in body
    assert "Đã ký số".encode() in body
    assert workspace.processing.tokens[-1] == "Bearer access-1"


def test_the_result_waits_for_approval_and_the_extension_comes_once() -> None:
    from services.portal.workspace.views import offered_actions

    allowed = ["issue_result", "extend", "request_supplement"]
    roles = ["unit_head", "officer"]
    assert [f.action for f in offered_actions(allowed, roles)] == ["request_supplement", "extend"]
    approved = offered_actions(allowed, roles, approved=True, extended=True)
    assert [f.action for f in approved] == ["request_supplement", "issue_result"]


# --- the counter desk ---------------------------------------------------------------------------

APPLICANT = {
    "applicant_kind": "person",
    "applicant_name": "Nguyễn Văn An",
    "applicant_identifier": "001099012345",
    "contact_phone": "0912345678",
}


async def test_a_counter_officer_records_a_postal_dossier_and_prints_its_receipt(
    workspace: Workspace,
) -> None:
    await workspace.sign_in("mc.shtt")
    home = await workspace.client.get("/can-bo")
    assert home.status_code == 303 and home.headers["location"] == "/can-bo/mot-cua"
    start = await workspace.client.get("/can-bo/mot-cua")
    assert "Mã thủ tục" in start.text and 'href="/can-bo/mot-cua">Tiếp nhận tại một cửa' in (
        start.text
    )
    assert 'href="/can-bo">Danh sách hồ sơ' not in start.text
    unknown = await workspace.client.get("/can-bo/mot-cua?thu-tuc=9.999999")
    assert unknown.status_code == 404 and "Không có thủ tục mã “9.999999”" in unknown.text
    form = await workspace.client.get("/can-bo/mot-cua?thu-tuc=1.004940")
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text and 'name="document_to_khai"' in form.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.text)
    assert key

    missing = await workspace.client.post(
        "/can-bo/mot-cua/ho-so",
        data={"csrf_token": csrf(form.text), "procedure_code": "1.004940", "channel": "3"},
    )
    assert missing.status_code == 422
    assert "Nhập họ và tên người nộp." in missing.text
    assert "Chọn tệp cho giấy tờ bắt buộc: Tờ khai." in missing.text
    assert workspace.processing.intake.recorded == []

    recorded = await workspace.client.post(
        "/can-bo/mot-cua/ho-so",
        data={
            "csrf_token": csrf(form.text),
            "procedure_code": "1.004940",
            "channel": "3",
            "idempotency_key": key.group(1),
            **APPLICANT,
        },
        files={"document_to_khai": ("to-khai.pdf", b"%PDF-1.4 to khai", "application/pdf")},
    )
    assert recorded.status_code == 303
    assert recorded.headers["location"] == "/can-bo/mot-cua/bien-nhan/000.00.21.G12-261205-0042"
    headers, body = workspace.processing.intake.recorded[0]
    assert headers["authorization"] == "Bearer access-1"  # the counter officer's own token
    assert headers["idempotency-key"] == key.group(1)
    assert b'name="to_khai"; filename="to-khai.pdf"' in body
    assert b'"channel": 3' in body and b'"procedure_code": "1.004940"' in body
    assert "Nguyễn Văn An".encode() in body

    receipt = await workspace.client.get(recorded.headers["location"])
    assert receipt.status_code == 200
    for shown in ("000.00.21.G12-261205-0042", "s3cret-s3cret", "Bưu chính", "<svg"):
        assert shown in receipt.text
    assert receipt.headers["cache-control"] == "no-store"
    # Only this session's receipts: another code is not found.
    other = await workspace.client.get("/can-bo/mot-cua/bien-nhan/000.00.21.G12-261205-0043")
    assert other.status_code == 404


async def test_the_counter_desk_is_the_counter_officers(workspace: Workspace) -> None:
    await workspace.sign_in("cv.shtt")
    page = await workspace.client.get("/can-bo/mot-cua")
    assert page.status_code == 403
    forced = await workspace.client.post("/can-bo/mot-cua/ho-so", data={})
    assert forced.status_code == 403
    assert workspace.processing.intake.recorded == []


# --- the unit head's report -----------------------------------------------------------------------


async def test_the_unit_head_sees_the_units_quarterly_report_and_its_csv(
    workspace: Workspace,
) -> None:
    await workspace.sign_in("ld.shtt")
    page = await workspace.client.get("/can-bo/bao-cao?nam=2026&quy=3")
    assert page.status_code == 200
    assert "Quý 3 năm 2026" in page.text and "Cục Sở hữu trí tuệ" in page.text
    assert "<td>Hồ sơ tiếp nhận</td><td>40</td>" in page.text
    assert "<td>Tỷ lệ hồ sơ giải quyết đúng hạn</td><td>87,5%</td><td>35/40</td>" in page.text
    assert "Chưa có số liệu" in page.text
    assert '<svg role="img"' in page.text and 'width="288.8"' in page.text  # 87.5% of 330
    assert 'href="/can-bo/bao-cao.csv?nam=2026&amp;quy=3"' in page.text
    reporting = workspace.processing.reporting
    assert reporting.asked[-1] == {"year": "2026", "quarter": "3"}
    assert reporting.tokens == ["Bearer access-1"]

    csv = await workspace.client.get("/can-bo/bao-cao.csv?nam=2026&quy=3")
    assert csv.status_code == 200 and csv.content == b"unit,received\nSHTT,12\n"
    assert csv.headers["content-disposition"] == 'attachment; filename="bao-cao.csv"'
    assert reporting.tokens == ["Bearer access-1"] * 2


async def test_an_officer_has_no_report_page(workspace: Workspace) -> None:
    await workspace.sign_in("cv.shtt")
    assert (await workspace.client.get("/can-bo/bao-cao")).status_code == 403
    assert (await workspace.client.get("/can-bo/bao-cao.csv")).status_code == 403
    assert workspace.processing.reporting.tokens == []


async def test_intakes_refusal_of_another_units_procedure_is_shown_on_the_form(
    workspace: Workspace,
) -> None:
    await workspace.sign_in("mc.tdc")
    form = await workspace.client.get("/can-bo/mot-cua?thu-tuc=1.004940")
    assert 'id="channel_1" name="channel" value="1" checked' in form.text  # counter by default
    workspace.processing.intake.other_unit = True
    refused = await workspace.client.post(
        "/can-bo/mot-cua/ho-so",
        data={
            "csrf_token": csrf(form.text),
            "procedure_code": "1.004940",
            "channel": "1",
            **APPLICANT,
        },
        files={"document_to_khai": ("to-khai.pdf", b"%PDF-1.4 to khai", "application/pdf")},
    )
    assert refused.status_code == 403
    assert "Không được ghi nhận hồ sơ này: Hồ sơ thuộc đơn vị khác." in refused.text
    assert 'value="Nguyễn Văn An"' in refused.text  # what was entered is kept
