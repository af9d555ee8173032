"""Demo data for the run profile: a few hundred dossiers across units, channels and states, moved
through the workflow by simulated citizens and officers over the services' real HTTP APIs, so a
newcomer opening the workspace, the portal and the reports sees a living platform.

    .venv/bin/python -m devstack.demo [--count 300] [--seed 7]    (or: ./scripts/run --demo)

Citizens submit online at intake (each from its own documentation-range address, passed as the
local portal passes it, `X-Forwarded-For`); counter officers record paper dossiers; officers and
unit heads act at processing with tokens of the development issuer (`shared.runtime.auth.DevIssuer`,
the key the run profile's services trust by default), or, when processing trusts only devstack's
Keycloak (`DVC_PROCESSING_JWT_ISSUER` set to the realm), with the realm's demo users' tokens
(`cv.shtt`, `ld.shtt`, `mc.shtt`, ...; the administrator `quantri` for a role a unit lacks).
Each dossier is given a target state and walked there: submitted, refused at intake, received,
in processing (some assigned), supplement or payment requested, withdrawal asked, refused, result
issued, result returned (and rated). Running it again adds more dossiers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import sys
import uuid
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.runtime.auth import DevIssuer

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
JPG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"

ONLINE, COUNTER, POST = 2, 1, 3
# Target states (processing's numbers) and how often a dossier is walked to each.
ONLINE_TARGETS = {1: 12, 3: 5, 4: 20, 5: 8, 6: 5, 7: 4, 8: 6, 9: 12, 10: 28}
PAPER_TARGETS = {2: 20, 4: 25, 5: 5, 8: 5, 9: 15, 10: 30}
STATE_NAMES = {
    1: "đã nộp trực tuyến, chờ tiếp nhận",
    2: "đã tiếp nhận (hồ sơ giấy)",
    3: "từ chối tiếp nhận",
    4: "đang xử lý",
    5: "chờ bổ sung",
    6: "chờ thực hiện nghĩa vụ tài chính",
    7: "công dân xin rút",
    8: "dừng / từ chối giải quyết",
    9: "đã có kết quả",
    10: "đã trả kết quả",
}
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô"]
MIDDLE = ["Văn", "Thị", "Minh", "Thu", "Đức", "Ngọc", "Hữu", "Thanh"]
GIVEN = ["An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hùng", "Lan", "Mai", "Nam", "Phương"]
COMPANIES = ["Ánh Dương", "Sao Việt", "Hồng Hà", "Tân Phát", "Minh Khang", "Bách Khoa"]
# The realm's user names: `cv.shtt` (officer), `ld.shtt` (unit head), `mc.shtt` (counter).
ROLE_PREFIX = {"officer": "cv", "unit_head": "ld", "counter_officer": "mc"}
# Provinces' codes of citizen IDs (Hà Nội, Hải Phòng, Đà Nẵng, Hồ Chí Minh, Cần Thơ).
PROVINCES = ["001", "031", "048", "079", "092"]


@dataclass
class DemoResult:
    """What the demo did: each dossier's code, channel, unit and the state it reached."""

    dossiers: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def states(self) -> Counter[int]:
        return Counter(d["state"] for d in self.dossiers)

    def report(self) -> str:
        lines = [f"demo: {len(self.dossiers)} dossiers added"]
        channels = Counter(d["channel"] for d in self.dossiers)
        names = {ONLINE: "trực tuyến", COUNTER: "trực tiếp", POST: "bưu chính"}
        lines.append(
            "  by channel: " + ", ".join(f"{names[c]} {n}" for c, n in sorted(channels.items()))
        )
        units = Counter(d["unit"] for d in self.dossiers)
        lines.append("  by unit: " + ", ".join(f"{u} {n}" for u, n in sorted(units.items())))
        lines.append("  by state:")
        for state, n in sorted(self.states().items()):
            lines.append(f"    {state:>2} {STATE_NAMES.get(state, '?')}: {n}")
        if self.failures:
            lines.append(f"  {len(self.failures)} not completed (first: {self.failures[0]})")
        return "\n".join(lines)


class DemoError(Exception):
    pass


class DevTokens:
    """Tokens of the development issuer (`shared.runtime.auth.DevIssuer`): any unit and role."""

    def __init__(self, issuer: DevIssuer) -> None:
        self.issuer = issuer
        self._minted: dict[tuple[str, str], str] = {}

    async def token(self, role: str, unit: str) -> str:
        if (role, unit) not in self._minted:
            roles = ["unit_head", "officer"] if role == "unit_head" else [role]
            self._minted[role, unit] = self.issuer.mint(
                f"demo-{ROLE_PREFIX[role]}.{unit.lower()}", roles, unit, name=f"Cán bộ demo {unit}"
            )
        return self._minted[role, unit]

    def assignee(self, unit: str) -> str:
        return f"demo-cv.{unit.lower()}"


class ProviderTokens:
    """Tokens of the realm's demo users from the OpenID Connect provider (devstack's Keycloak,
    the realm's password-grant client for scripts), for services that trust only the provider:
    the unit's own user for the role (`cv.shtt`, `ld.shtt`, `mc.shtt`), else the realm's
    administrator `quantri` (processing and intake let an administrator act for any unit)."""

    CLIENT = "dvc-dev-cli"
    PASSWORD = "demo-dvc"  # the development realm's, in the repository
    ADMIN = "quantri"

    def __init__(self, client: httpx.AsyncClient, issuer_url: str) -> None:
        self.client = client
        self.token_url = issuer_url.rstrip("/") + "/protocol/openid-connect/token"
        self._tokens: dict[str, tuple[str, float]] = {}  # user -> token, when to renew
        self._absent: set[str] = set()
        self._lock = asyncio.Lock()

    async def token(self, role: str, unit: str) -> str:
        user = f"{ROLE_PREFIX[role]}.{unit.lower()}"
        found = await self._user_token(user)
        return found if found is not None else await self._admin_token()

    def assignee(self, unit: str) -> str:
        return self._subjects.get(f"cv.{unit.lower()}") or self._subjects.get(self.ADMIN, "")

    @property
    def _subjects(self) -> dict[str, str]:
        return {user: _subject(token) for user, (token, _) in self._tokens.items()}

    async def _admin_token(self) -> str:
        found = await self._user_token(self.ADMIN)
        if found is None:
            raise DemoError(f"the provider refuses the realm's administrator {self.ADMIN}")
        return found

    async def _user_token(self, user: str) -> str | None:
        async with self._lock:
            if user in self._absent:
                return None
            now = asyncio.get_running_loop().time()
            if user in self._tokens and self._tokens[user][1] > now:
                return self._tokens[user][0]
            response = await self.client.post(
                self.token_url,
                data={
                    "grant_type": "password",
                    "client_id": self.CLIENT,
                    "username": user,
                    "password": self.PASSWORD,
                    "scope": "openid",
                },
            )
            if response.status_code in (400, 401):  # no such user in the realm
                self._absent.add(user)
                return None
            _expect(response, 200)
            answer = response.json()
            lifetime = float(answer.get("expires_in", 60))
            self._tokens[user] = (answer["access_token"], now + max(lifetime - 30, lifetime / 2))
            return str(answer["access_token"])


def _subject(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims.get("sub", ""))


class Platform:
    """The services' HTTP APIs as the simulated people use them."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        intake_url: str,
        processing_url: str,
        tokens: DevTokens | ProviderTokens,
    ) -> None:
        self.client = client
        self.intake = intake_url.rstrip("/")
        self.processing = processing_url.rstrip("/")
        self.tokens = tokens

    async def auth(self, role: str, unit: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.tokens.token(role, unit)}"}

    async def trusted(self) -> bool:
        """Whether processing accepts the tokens (not 401)."""
        response = await self.client.get(
            f"{self.processing}/api/v1/calendar/changes",
            headers=await self.auth("officer", "SHTT"),
        )
        return response.status_code != 401

    async def catalogue(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get(f"{self.intake}/api/v1/procedures", params=params)
            _expect(response, 200)
            page = response.json()
            found.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    async def submit(
        self, procedure: dict[str, Any], dossier: dict[str, Any], channel: int, citizen_ip: str
    ) -> tuple[str, str]:
        files = [
            (d["code"], (f"{d['code']}.{kind}", data, mime))
            for d in procedure["documents"]
            for kind, data, mime in [_file_for(d["formats"])]
        ]
        if channel == ONLINE:
            response = await self.client.post(
                f"{self.intake}/api/v1/dossiers",
                data={"dossier": json.dumps(dossier, ensure_ascii=False)},
                files=files,
                headers={"X-Forwarded-For": citizen_ip, "Idempotency-Key": str(uuid.uuid4())},
            )
        else:
            response = await self.client.post(
                f"{self.intake}/api/v1/counter/dossiers",
                data={"dossier": json.dumps({**dossier, "channel": channel}, ensure_ascii=False)},
                files=files,
                headers={
                    **(await self.auth("counter_officer", procedure["unit_code"])),
                    "Idempotency-Key": str(uuid.uuid4()),
                },
            )
        _expect(response, 201)
        return response.json()["dossier_code"], response.json()["tracking_secret"]

    async def case(self, unit: str, code: str, *, within: float = 90) -> dict[str, Any]:
        """The case once processing has opened it (it follows intake's event)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            response = await self.client.get(
                f"{self.processing}/api/v1/cases/{code}", headers=await self.auth("officer", unit)
            )
            if response.status_code == 200:
                case: dict[str, Any] = response.json()
                return case
            if response.status_code != 404 or asyncio.get_running_loop().time() > deadline:
                raise DemoError(f"case {code}: {response.status_code} {response.text[:200]}")
            await asyncio.sleep(0.5)

    async def until_state(
        self, unit: str, code: str, states: set[int], *, within: float = 60
    ) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            case = await self.case(unit, code)
            if case["state"] in states:
                return case
            if asyncio.get_running_loop().time() > deadline:
                raise DemoError(f"case {code} stays in state {case['state']}, not {states}")
            await asyncio.sleep(0.5)

    async def act(
        self, unit: str, code: str, action: str, body: dict[str, Any] | None, role: str
    ) -> dict[str, Any]:
        response = await self.client.post(
            f"{self.processing}/api/v1/cases/{code}/{action}",
            json=body,
            headers={**(await self.auth(role, unit)), "Idempotency-Key": str(uuid.uuid4())},
        )
        _expect(response, 200)
        case: dict[str, Any] = response.json()
        return case

    async def issue_result(self, unit: str, code: str) -> dict[str, Any]:
        response = await self.client.post(
            f"{self.processing}/api/v1/cases/{code}/result",
            data={"note": "Kết quả giải quyết (dữ liệu mẫu)"},
            files={"file": (f"ket-qua-{code}.pdf", PDF, "application/pdf")},
            headers={**(await self.auth("officer", unit)), "Idempotency-Key": str(uuid.uuid4())},
        )
        _expect(response, 200)
        case: dict[str, Any] = response.json()
        return case

    async def as_citizen(
        self, code: str, secret: str, path: str, body: dict[str, Any], *, within: float = 30
    ) -> bool:
        """A citizen's step on the tracking API (withdraw, rate), retried while intake has not
        yet heard of the dossier's new state (409)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            response = await self.client.post(
                f"{self.intake}/api/v1/dossiers/{code}/{path}",
                json=body,
                headers={"X-Tracking-Secret": secret},
            )
            if response.status_code in (201, 202):
                return True
            if response.status_code != 409 or asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.5)


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise DemoError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


FILES: dict[str, tuple[bytes, str]] = {
    "pdf": (PDF, "application/pdf"),
    "png": (PNG, "image/png"),
    "jpg": (JPG, "image/jpeg"),
    "jpeg": (JPG, "image/jpeg"),
    "docx": (_docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
}


def _file_for(formats: list[str]) -> tuple[str, bytes, str]:
    for kind in formats or ["pdf"]:
        if kind.lower() in FILES:
            data, mime = FILES[kind.lower()]
            return kind.lower(), data, mime
    raise DemoError(f"no sample file for formats {formats}")


def _usable(procedure: dict[str, Any]) -> bool:
    return all(
        any(f.lower() in FILES for f in d.get("formats") or ["pdf"])
        for d in procedure.get("documents") or []
    )


def choose_procedures(catalogue: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """A few procedures of every unit (online ones first), whose documents we can sample."""
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for procedure in catalogue:
        if _usable(procedure):
            by_unit.setdefault(procedure["unit_code"], []).append(procedure)
    chosen: list[dict[str, Any]] = []
    for procedures in by_unit.values():
        online = [p for p in procedures if p["level"] >= 3]
        paper = [p for p in procedures if p["level"] < 3]
        chosen += rng.sample(online, min(3, len(online))) + rng.sample(paper, min(1, len(paper)))
    if not chosen:
        raise DemoError("the catalogue has no procedure to make dossiers for")
    return chosen


def applicant(rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """A person (valid citizen ID) or now and then an organisation (valid tax code)."""
    if rng.random() < 0.2:
        from stdnum.vn import mst

        base = f"01{rng.randrange(10**7):07d}"
        name = f"Công ty TNHH {rng.choice(COMPANIES)} {rng.randrange(100, 999)}"
        who = {
            "kind": "organisation",
            "name": name,
            "identifier": base + mst.calc_check_digit(base),
        }
    else:
        female = rng.random() < 0.5
        middle = "Thị" if female else rng.choice([m for m in MIDDLE if m != "Thị"])
        name = f"{rng.choice(FAMILY)} {middle} {rng.choice(GIVEN)}"
        number = (
            f"{rng.choice(PROVINCES)}{int(female)}{rng.randrange(60, 99)}{rng.randrange(10**6):06d}"
        )
        who = {"kind": "person", "name": name, "identifier": number}
    contact: dict[str, Any] = {"phone": f"09{rng.randrange(10**8):08d}"}
    if rng.random() < 0.6:
        contact["email"] = f"demo{rng.randrange(10**6)}@example.vn"
    return who, contact


@dataclass(frozen=True)
class Plan:
    procedure: dict[str, Any]
    channel: int
    target: int
    dossier: dict[str, Any]
    citizen_ip: str


def plans(
    procedures: list[dict[str, Any]], count: int, rng: random.Random, now: datetime
) -> list[Plan]:
    made = []
    for _ in range(count):
        procedure = rng.choice(procedures)
        online = procedure["level"] >= 3 and rng.random() < 0.75
        channel = ONLINE if online else rng.choice([COUNTER, COUNTER, POST])
        targets = ONLINE_TARGETS if online else PAPER_TARGETS
        target = rng.choices(list(targets), weights=list(targets.values()))[0]
        who, contact = applicant(rng)
        dossier: dict[str, Any] = {
            "procedure_code": procedure["code"],
            "applicant": who,
            "contact": contact,
            "form": {"noi_dung": f"Hồ sơ mẫu: {procedure['name'][:120]}"},
        }
        if not online:  # handed in over the last two days, as the backdating window allows
            received = now - timedelta(hours=rng.uniform(0, 40))
            dossier["received_at"] = received.isoformat()
        ip = f"203.0.113.{rng.randrange(1, 255)}"
        made.append(Plan(procedure, channel, target, dossier, ip))
    return made


async def walk(platform: Platform, plan: Plan, rng: random.Random) -> dict[str, Any]:
    """Submit the dossier and move it to its target state, as its people would."""
    unit = plan.procedure["unit_code"]
    code, secret = await platform.submit(
        plan.procedure, plan.dossier, plan.channel, plan.citizen_ip
    )
    case = await platform.case(unit, code)

    async def act(action: str, body: dict[str, Any] | None = None, role: str = "officer") -> None:
        nonlocal case
        case = await platform.act(unit, code, action, body, role)

    target = plan.target
    if case["state"] == 1:  # online: the intake check
        if target == 1:
            return _done(plan, code, case)
        if target == 3:
            await act("refuse-intake", {"reason": "Hồ sơ không đúng thủ tục đề nghị (dữ liệu mẫu)"})
            return _done(plan, code, case)
        await act("receive", {"note": "Hồ sơ hợp lệ"})
    if case["state"] == 2:  # paper: waits for the unit, or moves on
        if target == 2:
            return _done(plan, code, case)
        try:
            await act("start-processing")
        except DemoError:  # processing's scanner moved it meanwhile: read on
            pass
    case = await platform.until_state(unit, code, {4})
    if rng.random() < 0.6:
        await act("assign", {"assignee": platform.tokens.assignee(unit)}, role="unit_head")
    documents = [d["code"] for d in plan.procedure["documents"]][:1] or ["giay_to_bo_sung"]
    if target == 5:
        await act("request-supplement", {"reason": "Bản quét chưa rõ", "documents": documents})
    elif target == 6:
        await act("request-payment", {"amount_vnd": 150_000 + 50_000 * rng.randrange(6)})
    elif target == 7:
        asked = await platform.as_citizen(code, secret, "withdrawal", {"reason": "Nộp nhầm"})
        if asked:
            case = await platform.until_state(unit, code, {7})
    elif target == 8:
        await act("refuse", {"reason": "Không đủ điều kiện cấp (dữ liệu mẫu)"}, role="unit_head")
    elif target in (9, 10):
        await act("approve", {"note": "Đồng ý"}, role="unit_head")
        case = await platform.issue_result(unit, code)
        if target == 10:
            method = "online" if plan.channel == ONLINE else rng.choice(["counter", "post"])
            await act("return-result", {"method": method})
            if rng.random() < 0.5:
                score = rng.choices([5, 4, 3, 2], weights=[6, 3, 1, 1])[0]
                await platform.as_citizen(code, secret, "rating", {"score": score})
    return _done(plan, code, case)


def _done(plan: Plan, code: str, case: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": code,
        "channel": plan.channel,
        "unit": plan.procedure["unit_code"],
        "procedure": plan.procedure["code"],
        "target": plan.target,
        "state": case["state"],
    }


async def run_demo(
    intake_url: str,
    processing_url: str,
    *,
    count: int,
    issuer: DevIssuer | None = None,
    provider_url: str | None = None,
    seed: int | None = None,
    concurrency: int = 6,
    progress: Callable[[str], None] = print,
) -> DemoResult:
    """Adds `count` dossiers and walks them; answers what it did (failures are listed, not
    raised, so one refused step does not stop the demo). Staff act with the development
    issuer's tokens; if processing refuses them (it trusts only the provider) and
    `provider_url` (the realm's issuer URL) is given, with the realm's demo users' tokens."""
    rng = random.Random(seed)
    result = DemoResult()
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=60) as client:
        platform = Platform(client, intake_url, processing_url, DevTokens(issuer or DevIssuer()))
        if not await platform.trusted():
            if provider_url is None:
                raise DemoError("processing refuses the development issuer's tokens")
            platform.tokens = ProviderTokens(client, provider_url)
            progress(f"demo: staff sign in at {provider_url} (the realm's demo users)")
            if not await platform.trusted():
                raise DemoError("processing refuses the provider's tokens too")
        procedures = choose_procedures(await platform.catalogue(), rng)
        units = sorted({p["unit_code"] for p in procedures})
        progress(f"demo: {count} dossiers for {len(procedures)} procedures of {len(units)} units")
        planned = plans(procedures, count, rng, datetime.now(UTC))

        async def one(plan: Plan, walker_rng: random.Random) -> None:
            async with limit:
                try:
                    result.dossiers.append(await walk(platform, plan, walker_rng))
                except (DemoError, httpx.HTTPError) as failure:
                    result.failures.append(str(failure) or type(failure).__name__)
                done = len(result.dossiers) + len(result.failures)
                if done % 25 == 0:
                    progress(f"demo: {done}/{count}")

        tasks: list[Awaitable[None]] = [one(plan, random.Random(rng.random())) for plan in planned]
        await asyncio.gather(*tasks)
    return result


def main(argv: list[str] | None = None) -> int:
    from devstack import keycloak_server, services
    from devstack.config import load_config

    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo",
        description="Fill the running platform with demo dossiers moved through the workflow.",
    )
    parser.add_argument("--profile", choices=("run", "test"), default="run")
    parser.add_argument("--count", type=int, default=300, help="dossiers to add (default 300)")
    parser.add_argument("--seed", type=int, default=None, help="for a repeatable mix")
    args = parser.parse_args(argv)
    config = load_config(args.profile)
    intake = f"http://127.0.0.1:{services.port(config, 'intake')}"
    processing = f"http://127.0.0.1:{services.port(config, 'processing')}"
    try:
        result = asyncio.run(
            run_demo(
                intake,
                processing,
                count=args.count,
                seed=args.seed,
                provider_url=keycloak_server.issuer(config),
            )
        )
    except (DemoError, httpx.HTTPError) as failure:
        print(f"demo: {failure} (is the platform running? ./scripts/run)", file=sys.stderr)
        return 1
    print(result.report())
    return 0 if result.dossiers else 1


if __name__ == "__main__":
    sys.exit(main())
