"""The officers' worklist at 100,000 stored cases: the workspace's page against processing's own
API for the same query.

Run (the test-profile servers, started by `.venv/bin/python -m devstack --profile test up`):
    .venv/bin/python bench/bench_worklist.py [--cases 100000] [--queries 200]

Set-up (no Kafka needed): N cases inserted directly into a fresh processing database, most of
them finished as in a year of work (`--active-share` of them open, 20% by default), unit `G12`
holding `--unit-share` of them (10%), the rest spread over 19 more units. Processing's API (in
process, without its consumers) and the portal (in process, its workspace calling processing
over HTTP through an ASGI transport) run on that database; the officer signs in through a
stand-in provider whose access tokens processing verifies (the dev issuer's keys), so the
figures leave Keycloak out.

Prints figures only, met or not (target: worklist page p99 <= 200 ms). Measured 2026-12-05 on the
2-core development machine shared with other test runs (load average 5-7), FerretDB 1.24 on
PostgreSQL, 100,000 cases (unit G12: 10,084, 2,008 open), 100 queries each. Before our FerretDB
patch (upstream FerretDB: equalities pushed down, never a sort, no limit with a filter):

    processing's store, uncached counts of the unit          p50 563 ms   p99 632 ms
    GET /api/v1/case-counts (cached 10 s)                    p50   1 ms   p99   9 ms
    GET /api/v1/cases page of 25, no filter                  p50 268 ms   p99 390 ms
                              state 4                        p50 139 ms   p99 335 ms
                              channel 1 (counter)            p50 208 ms   p99 318 ms
                              second page (cursor)           p50 344 ms   p99 571 ms
    GET /can-bo (counts + page, rendered), no filter         p50 322 ms   p99 1088 ms
                              ?trang-thai=4                  p50  98 ms   p99  196 ms
                              ?kenh=1                        p50 144 ms   p99  264 ms

With devstack/ferretdb/patches/ (0001: the sort on top-level fields and the limit pushed down to
PostgreSQL when the filter is exact; 0002: an exact `$match` and a `$group` of counts as one
`GROUP BY`; the store's cursor page as two range queries, not an `$or`), measured 2026-12-06 on
the same machine (quiet), same data and command:

    processing's store, uncached counts of the unit          p50  51 ms   p99  58 ms
    GET /api/v1/case-counts (cached 10 s)                    p50   1 ms   p99   2 ms
    GET /api/v1/cases page of 25, no filter                  p50  35 ms   p99  42 ms
                              state 4                        p50  29 ms   p99  36 ms
                              channel 1 (counter)            p50  51 ms   p99  58 ms
                              second page (cursor)           p50  50 ms   p99  55 ms
    GET /can-bo (counts + page, rendered), no filter         p50  41 ms   p99  48 ms
                              ?trang-thai=4                  p50  32 ms   p99  40 ms
                              ?kenh=1                        p50  55 ms   p99  60 ms

A page now reads at most 26 documents of a rank into Go (PostgreSQL still visits the rank's
matching rows, about 1,000, to order them: no btree serves the ORDER BY), and the counts come
back as one row per state. MongoDB serves both from the declared indexes.

- processing's API: the unit's counts per state (`GET /api/v1/case-counts`) and the worklist
  page (`GET /api/v1/cases`, 25 items), with no filter, a state filter and a channel filter;
- the workspace's page `GET /can-bo` for the same queries (counts and page, rendered).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from services.portal.main import create_app as create_portal
from services.portal.settings import PortalSettings
from services.processing.adapters.store import _fields
from services.processing.domain.calendar import WorkingCalendar
from services.processing.domain.case import Case
from services.processing.domain.workflow import Rules, refresh
from services.processing.main import create_app as create_processing
from services.processing.settings import ProcessingSettings
from shared.contracts.events import Channel, DossierState
from shared.runtime.auth import DevIssuer
from shared.runtime.mongo import create_mongo_client

UNIT = "G12"  # the measured unit: a quarter of all cases
OTHER_UNITS = [f"G{n:02d}" for n in range(30, 49)]
ISSUER = "http://idp.bench/realms/dvc"
PAGE = 25  # the workspace's page size
STATES = [
    DossierState.SUBMITTED,
    DossierState.RECEIVED,
    DossierState.IN_PROCESSING,
    DossierState.IN_PROCESSING,
    DossierState.IN_PROCESSING,
    DossierState.SUPPLEMENT_REQUESTED,
    DossierState.PAYMENT_REQUESTED,
    DossierState.PROCESSED,
]
FINISHED = [DossierState.RESULT_RETURNED] * 8 + [DossierState.STOPPED, DossierState.NOT_RECEIVED]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def case_document(
    n: int, rng: random.Random, now: datetime, rules: Rules, args: argparse.Namespace
) -> dict[str, Any]:
    unit = UNIT if rng.random() < args.unit_share else rng.choice(OTHER_UNITS)
    channel = rng.choice([Channel.ONLINE, Channel.ONLINE, Channel.COUNTER, Channel.POST])
    active = rng.random() < args.active_share
    state = rng.choice(STATES if active else FINISHED)
    received = state != DossierState.SUBMITTED
    submitted = now - timedelta(days=rng.randrange(30 if active else 720), minutes=n % 600)
    case = Case(
        code=f"000.00.21.{unit}-{261000 + n // 10000:06d}-{n % 10000:04d}",
        procedure_code=f"1.00{rng.randrange(100, 130)}",
        procedure_name="Thủ tục đo",
        unit_code=unit,
        level=4,
        channel=channel,
        state=state,
        applicant_name="Nguyễn Văn A",
        submitted_at=submitted,
        received_at=submitted if received else None,
        due_at=now + timedelta(hours=rng.randrange(-48, 500)) if received else None,
    )
    case = refresh(case, rules)
    return {"_id": case.code, **_fields(case), "version": 1, "history": []}


class Provider:
    """A stand-in OpenID Connect provider: its ID tokens are signed with a key of its own, its
    access tokens are the dev issuer's, which processing verifies."""

    def __init__(self, issuer: DevIssuer) -> None:
        self.issuer = issuer
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.asked: dict[str, dict[str, str]] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/protocol/openid-connect/auth",
                    "token_endpoint": f"{ISSUER}/protocol/openid-connect/token",
                    "jwks_uri": f"{ISSUER}/protocol/openid-connect/certs",
                    "end_session_endpoint": f"{ISSUER}/protocol/openid-connect/logout",
                },
            )
        if path.endswith("/certs"):
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            return httpx.Response(200, json={"keys": [{**jwk, "kid": "bench", "alg": "RS256"}]})
        if path.endswith("/token"):
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            asked = self.asked.pop(form.get("code", ""), {})
            claims = {
                "iss": ISSUER,
                "aud": "dvc-workspace",
                "sub": "bench-officer",
                "preferred_username": "cv.bench",
                "name": "Cán bộ đo",
                "unit": UNIT,
                "roles": ["officer"],
                "nonce": asked.get("nonce"),
                "iat": int(time.time()),
                "exp": int(time.time()) + 3600,
            }
            id_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "bench"})
            return httpx.Response(
                200,
                json={
                    "access_token": self.issuer.mint("bench-officer", ["officer"], UNIT),
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "id_token": id_token,
                },
            )
        return httpx.Response(404)


async def sign_in(client: httpx.AsyncClient, provider: Provider) -> None:
    started = await client.get("/can-bo/dang-nhap")
    location = started.headers["location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    code = uuid.uuid4().hex
    provider.asked[code] = query
    back = await client.get(f"/can-bo/dang-nhap/xong?code={code}&state={query['state']}")
    assert back.status_code == 303, back.text


async def timed(
    label: str, queries: int, call: Callable[[int], Awaitable[httpx.Response]]
) -> list[float]:
    samples: list[float] = []
    for i in range(queries):
        began = time.perf_counter()
        answer = await call(i)
        samples.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{label}: {answer.status_code} {answer.text[:300]}")
    print(
        f"{label:<52} p50 {percentile(samples, 50):6.1f} ms   p99 {percentile(samples, 99):6.1f} ms"
        f"   (mean {statistics.mean(samples):.1f} ms, {queries} queries)"
    )
    return samples


async def bench(args: argparse.Namespace) -> None:
    rules = Rules(WorkingCalendar(), warning_fractions=())
    unique = uuid.uuid4().hex[:8]
    database = args.database or f"bench_worklist_{unique}"
    keys = Path(os.environ.get("TMPDIR", "/tmp")) / "dvc-bench-issuer"
    issuer = DevIssuer(keys)
    settings = ProcessingSettings(
        kafka_bootstrap=args.kafka,
        mongo_url=args.mongo,
        mongo_database=database,
        topic_suffix=f".benchwl{unique}",
        scanner_enabled=False,
        jwt_public_key_file=str(issuer.public_key_path),
    )
    processing_app = create_processing(settings)
    processing = processing_app.state.processing
    mongo = create_mongo_client(args.mongo)
    try:
        # A kept database (`--database`) already holds its cases and indexes (a count or the
        # indexes' backfill would read every case on FerretDB).
        kept = await mongo[database]["cases"].find_one({}, {"_id": 1}) is not None
        stored = args.cases if kept else 0
        if not kept:
            await processing.store.ensure_indexes()
        rng = random.Random(4094)
        now = datetime.now(UTC)
        started = time.perf_counter()
        batch: list[dict[str, Any]] = []
        for n in range(stored, args.cases):
            batch.append(case_document(n, rng, now, rules, args))
            if len(batch) == 1000:
                await mongo[database]["cases"].insert_many(batch, ordered=False)
                batch = []
        if batch:
            await mongo[database]["cases"].insert_many(batch, ordered=False)
        in_unit = await mongo[database]["cases"].count_documents({"unit_code": UNIT})
        open_in_unit = sum((await processing.store.state_counts(unit_code=UNIT)).values())
        print(
            f"set-up: {args.cases:,} cases stored in {time.perf_counter() - started:.1f} s; "
            f"unit {UNIT} has {in_unit:,}, {open_in_unit:,} of them open"
        )

        token = issuer.mint("bench-officer", ["officer"], UNIT)
        officer = {"Authorization": f"Bearer {token}"}
        api_queries = {
            "no filter": "",
            "state 4 (in processing)": "&state=4",
            "channel 1 (counter)": "&channel=1",
        }
        processing_transport = httpx.ASGITransport(app=processing_app)
        # Processing's lifespan (its consumers, relay and scanner) is not started: the API
        # answers from the store alone, and the broker plays no part in these queries.
        async with httpx.AsyncClient(transport=processing_transport, base_url="http://p") as api:
            print("-- processing's store, uncached (what a cache miss of the counts costs)")
            for label, count in (
                ("counts per state of the unit (aggregate)", {}),
                ("counts per state, counter channel", {"channel": 1}),
            ):
                samples: list[float] = []
                for _ in range(max(5, args.queries // 10)):
                    began = time.perf_counter()
                    await processing.store.state_counts(unit_code=UNIT, **count)
                    samples.append((time.perf_counter() - began) * 1000)
                print(
                    f"{label:<52} p50 {percentile(samples, 50):6.1f} ms   "
                    f"p99 {percentile(samples, 99):6.1f} ms   ({len(samples)} queries)"
                )
            print("-- processing's API (HTTP in process, auth included; counts cached 10 s)")
            await timed(
                "counts per state  GET /api/v1/case-counts",
                args.queries,
                lambda i: api.get("/api/v1/case-counts", headers=officer),
            )
            for label, query in api_queries.items():
                await timed(
                    f"page of {PAGE}, {label}",
                    args.queries,
                    lambda i, q=query: api.get(f"/api/v1/cases?limit={PAGE}{q}", headers=officer),
                )
            found = await api.get(f"/api/v1/cases?limit={PAGE}", headers=officer)
            cursor = found.json()["next_cursor"]
            await timed(
                f"page of {PAGE}, the second page (cursor)",
                args.queries,
                lambda i: api.get(f"/api/v1/cases?limit={PAGE}&cursor={cursor}", headers=officer),
            )

            provider = Provider(issuer)
            portal_app = create_portal(
                PortalSettings(
                    oidc_issuer_url=ISSUER,
                    oidc_redirect_base_url="http://portal.bench",
                    processing_base_url="http://p",
                ),
                processing_transport=processing_transport,
                provider_transport=httpx.MockTransport(provider.handle),
            )
            async with (
                portal_app.router.lifespan_context(portal_app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=portal_app), base_url="http://portal.bench"
                ) as web,
            ):
                await sign_in(web, provider)
                print("-- the workspace's worklist page (counts + page of 25, rendered)")
                pages = {
                    "no filter": "",
                    "state 4 (in processing)": "?trang-thai=4",
                    "channel 1 (counter)": "?kenh=1",
                }
                for label, query in pages.items():
                    await timed(
                        f"GET /can-bo{query or ''}  ({label})",
                        args.queries,
                        lambda i, q=query: web.get(f"/can-bo{q}"),
                    )
    finally:
        if not args.database:
            await mongo.drop_database(database)
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--active-share",
        type=float,
        default=0.2,
        help="the share of cases still open (the rest finished: returned, stopped, refused)",
    )
    parser.add_argument(
        "--unit-share", type=float, default=0.1, help=f"the share of cases of unit {UNIT}"
    )
    parser.add_argument(
        "--database",
        help="keep the cases in this database (and reuse those already there) for another run",
    )
    parser.add_argument(
        "--kafka",
        default=f"127.0.0.1:{os.environ.get('DEVSTACK_TEST_KAFKA_PORT', '19092')}",
    )
    parser.add_argument(
        "--mongo",
        default=f"mongodb://127.0.0.1:{os.environ.get('DEVSTACK_TEST_MONGO_PORT', '37017')}/",
    )
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}; Kafka {args.kafka}; MongoDB protocol {args.mongo}")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
