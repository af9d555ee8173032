"""The staff's real OpenID Connect provider: devstack's Keycloak (test profile) with the realm of
devstack/keycloak/realm-dvc.json, and the services verifying its tokens against its JWKS.

The first test starts Keycloak in the test profile unless it runs (`python -m devstack --profile
test up --with-keycloak` starts it ahead): once per machine the distribution is downloaded and
built (about a minute), and a first start creates its database and imports the realm (30-120 s on
a busy 2-core machine); later starts take 15-20 s. It is left running for the next run, like the
test profile's Kafka and FerretDB (`python -m devstack --profile test down` stops it).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from devstack import keycloak_server
from devstack.config import load_config
from services.processing.main import create_app
from services.processing.settings import ProcessingSettings
from shared.contracts.topics import platform_topics
from shared.runtime.auth import AuthenticationError, JwksVerifier, Role, verifier_from_settings
from shared.runtime.kafka import ensure_topics
from tests.service_harness import QUICK_CONSUMERS

pytestmark = [pytest.mark.keycloak, pytest.mark.timeout(900)]

PASSWORD = "demo-dvc"  # every demo user's (development realm only)
WORKSPACE = ("dvc-workspace", "dvc-workspace-dev-secret")
CALLBACK = "http://127.0.0.1:18000/workspace/callback"


@pytest.fixture(scope="module")
def issuer() -> str:
    config = load_config("test")
    keycloak_server.install(config)
    keycloak_server.start(config)
    keycloak_server.wait_ready(config)
    return keycloak_server.issuer(config)


@pytest.fixture(scope="module")
def endpoints(issuer: str) -> dict[str, Any]:
    discovery = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    assert isinstance(discovery, dict)
    return discovery


def password_token(endpoints: dict[str, Any], username: str) -> str:
    """A token by the password grant of the realm's development client (tests and scripts)."""
    answer = httpx.post(
        endpoints["token_endpoint"],
        data={
            "grant_type": "password",
            "client_id": "dvc-dev-cli",
            "username": username,
            "password": PASSWORD,
            "scope": "openid",
        },
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert isinstance(token, str)
    return token


def _browser() -> httpx.AsyncClient:
    """A client keeping cookies as a browser does. Keycloak's session cookies are `Secure`:
    browsers send them to http://127.0.0.1 (a secure context), httpx over HTTPS only, so this
    client, which talks to the loopback provider only, drops the flag as it stores them."""
    client = httpx.AsyncClient()

    async def loopback_is_secure(response: httpx.Response) -> None:
        assert response.url.host == "127.0.0.1"
        for cookie in client.cookies.jar:
            cookie.secure = False

    client.event_hooks["response"] = [loopback_is_secure]
    return client


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


def _login_form_action(page: str) -> str:
    form = re.search(r"<form[^>]*\bid=\"kc-form-login\"[^>]*>", page)
    assert form, "no login form on the provider's page"
    action = re.search(r"\baction=\"([^\"]+)\"", form.group(0))
    assert action
    return html.unescape(action.group(1))


async def sign_in(endpoints: dict[str, Any], username: str) -> dict[str, Any]:
    """The workspace's sign-in as a browser drives it: authorisation request with PKCE, the
    provider's login form, the redirect back with a code, the code exchanged for tokens."""
    code_verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    async with _browser() as browser:
        page = await browser.get(
            endpoints["authorization_endpoint"],
            params={
                "client_id": WORKSPACE[0],
                "response_type": "code",
                "scope": "openid",
                "redirect_uri": CALLBACK,
                "state": state,
                "nonce": secrets.token_urlsafe(16),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert page.status_code == 200, page.text[:500]
        posted = await browser.post(
            _login_form_action(page.text),
            data={"username": username, "password": PASSWORD, "credentialId": ""},
        )
        assert posted.status_code == 302, posted.text[:500]
        location = posted.headers["location"]
        assert location.startswith(CALLBACK)
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == [state]
        exchange = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": CALLBACK,
            "client_id": WORKSPACE[0],
            "client_secret": WORKSPACE[1],
        }
        wrong = await browser.post(
            endpoints["token_endpoint"],
            data={**exchange, "code_verifier": secrets.token_urlsafe(48)},
        )
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        # A failed exchange spends the code: sign in again (the provider's session remains).
        page = await browser.get(
            endpoints["authorization_endpoint"],
            params={
                "client_id": WORKSPACE[0],
                "response_type": "code",
                "scope": "openid",
                "redirect_uri": CALLBACK,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert page.status_code == 302  # single sign-on: no form this time
        query = parse_qs(urlsplit(page.headers["location"]).query)
        tokens = await browser.post(
            endpoints["token_endpoint"],
            data={**exchange, "code": query["code"][0], "code_verifier": code_verifier},
        )
        assert tokens.status_code == 200, tokens.text
        answer: dict[str, Any] = tokens.json()
        return answer


def test_discovery_names_the_issuer_and_an_rs256_signing_key(
    issuer: str, endpoints: dict[str, Any]
) -> None:
    assert endpoints["issuer"] == issuer
    assert "S256" in endpoints["code_challenge_methods_supported"]
    jwks = httpx.get(endpoints["jwks_uri"]).json()
    signing = [k for k in jwks["keys"] if k.get("use") == "sig"]
    assert any(k["alg"] == "RS256" and k["kid"] for k in signing)


async def test_authorisation_code_with_pkce_through_the_login_form(
    issuer: str, endpoints: dict[str, Any]
) -> None:
    tokens = await sign_in(endpoints, "cv.shtt")
    assert {"access_token", "refresh_token", "id_token"} <= tokens.keys()

    verifier = JwksVerifier(issuer=issuer, audience="dvc-platform")  # discovery, as services do
    staff = await verifier.averify(tokens["access_token"])
    assert staff.unit == "SHTT"
    assert staff.roles == frozenset({Role.officer})
    assert staff.name  # the display name of the realm's user
    assert verifier.jwks_url == endpoints["jwks_uri"]

    async with httpx.AsyncClient() as http:
        refreshed = await http.post(
            endpoints["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": WORKSPACE[0],
                "client_secret": WORKSPACE[1],
            },
        )
    assert refreshed.status_code == 200
    assert (await verifier.averify(refreshed.json()["access_token"])).unit == "SHTT"


async def test_the_workspace_client_requires_pkce(endpoints: dict[str, Any]) -> None:
    async with _browser() as browser:
        page = await browser.get(
            endpoints["authorization_endpoint"],
            params={
                "client_id": WORKSPACE[0],
                "response_type": "code",
                "scope": "openid",
                "redirect_uri": CALLBACK,
                "state": "s",
            },
        )
    # Sent back to the client with the error, never shown the login form.
    assert page.status_code == 302
    query = parse_qs(urlsplit(page.headers["location"]).query)
    assert query["error"] == ["invalid_request"]


@pytest.mark.parametrize(
    ("username", "unit", "roles"),
    [
        ("cv.shtt", "SHTT", {Role.officer}),
        ("ld.shtt", "SHTT", {Role.unit_head, Role.officer}),
        ("mc.shtt", "SHTT", {Role.counter_officer}),
        ("cv.tdc", "TDC", {Role.officer}),
        ("ld.tdc", "TDC", {Role.unit_head, Role.officer}),
        ("cv.atbxhn", "ATBXHN", {Role.officer}),
        ("mc.atbxhn", "ATBXHN", {Role.counter_officer}),
        ("quantri", None, {Role.admin}),
    ],
)
def test_demo_users_carry_their_unit_and_roles(
    issuer: str, endpoints: dict[str, Any], username: str, unit: str | None, roles: set[Role]
) -> None:
    verifier = JwksVerifier(issuer=issuer, audience="dvc-platform")
    staff = verifier.verify(password_token(endpoints, username))
    assert (staff.unit, staff.roles) == (unit, frozenset(roles))


async def test_signing_key_rotation_at_the_provider(issuer: str, endpoints: dict[str, Any]) -> None:
    """A new signing key added to the realm is picked up at its first token; once it is removed,
    its tokens no longer verify."""
    verifier = JwksVerifier(issuer=issuer, audience="dvc-platform", min_refresh_seconds=0)
    before = password_token(endpoints, "cv.tdc")
    await verifier.averify(before)
    kids_before = verifier.key_ids

    base = issuer.split("/realms/")[0]
    async with httpx.AsyncClient(base_url=base) as http:
        signed_in = await http.post(
            "/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": keycloak_server.BOOTSTRAP_ADMIN[0],
                "password": keycloak_server.BOOTSTRAP_ADMIN[1],
            },
        )
        http.headers["Authorization"] = f"Bearer {signed_in.json()['access_token']}"
        realm = f"/admin/realms/{keycloak_server.REALM}"
        realm_id = (await http.get(realm)).json()["id"]
        created = await http.post(
            f"{realm}/components",
            json={
                "name": f"rotation-test-{secrets.token_hex(4)}",
                "providerId": "rsa-generated",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm_id,
                "config": {"priority": ["1000"], "keySize": ["2048"], "algorithm": ["RS256"]},
            },
        )
        assert created.status_code == 201, created.text
        component = created.headers["location"].rsplit("/", 1)[-1]
        try:
            after = password_token(endpoints, "cv.tdc")
            staff = await verifier.averify(after)  # an unknown kid: the set is fetched again
            assert staff.unit == "TDC"
            assert verifier.key_ids > kids_before
            await verifier.averify(before)  # the previous key still verifies its tokens
        finally:
            removed = await http.delete(f"{realm}/components/{component}")
            assert removed.status_code == 204

    expiring = JwksVerifier(issuer=issuer, audience="dvc-platform", max_age_seconds=0)
    with pytest.raises(AuthenticationError) as refused:
        await expiring.averify(after)
    assert refused.value.reason == "unknown_key"
    assert (await expiring.averify(password_token(endpoints, "cv.tdc"))).unit == "TDC"


# --------------------------------------------------------------------------- a real service


@pytest.fixture
async def processing(
    issuer: str, kafka_bootstrap: str, mongo_url: str, mongo_db: Any, unique: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The processing service configured with the provider's issuer URL only: it verifies
    staff tokens against the key set it discovers there."""
    suffix = f".{unique}"
    await ensure_topics(kafka_bootstrap, platform_topics(partitions=1, suffix=suffix))
    settings = ProcessingSettings(
        kafka_bootstrap=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=mongo_db.name,
        topic_suffix=suffix,
        environment="test",
        jwt_issuer=issuer,
        scanner_enabled=False,
        **QUICK_CONSUMERS,
    )
    assert isinstance(verifier_from_settings(settings, dev_issuer_dir=tmp_path), JwksVerifier)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://processing") as client:
            yield client


@pytest.mark.infra
async def test_processing_accepts_the_providers_tokens_with_their_unit_and_roles(
    processing: httpx.AsyncClient, endpoints: dict[str, Any]
) -> None:
    def bearer(username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {password_token(endpoints, username)}"}

    assert (await processing.get("/api/v1/cases")).status_code == 401
    officer = bearer("cv.shtt")
    worklist = await processing.get("/api/v1/cases", headers=officer)
    assert worklist.status_code == 200, worklist.text
    assert worklist.json()["items"] == []
    # The unit claim scopes the officer: another unit's worklist is refused.
    assert (await processing.get("/api/v1/cases?unit=TDC", headers=officer)).status_code == 403
    # The roles claim: a counter officer has no worklist here; an administrator sees any unit.
    assert (await processing.get("/api/v1/cases", headers=bearer("mc.shtt"))).status_code == 403
    admin = await processing.get("/api/v1/cases?unit=TDC", headers=bearer("quantri"))
    assert admin.status_code == 200
    tampered = officer["Authorization"][:-6] + "AAAAAA"
    refused = await processing.get("/api/v1/cases", headers={"Authorization": tampered})
    assert refused.status_code == 401


# --------------------------------------------------------------------------- devstack's home


def test_a_changed_realm_file_recreates_the_database(tmp_path: Path) -> None:
    config = dataclasses.replace(load_config("test"), data_dir=tmp_path)
    home = keycloak_server.home(config)
    keycloak_server._prepare_home(config)
    assert (home / "lib").resolve() == (keycloak_server.dist_dir() / "lib").resolve()
    imported = home / "data" / "import" / keycloak_server.REALM_FILE.name
    assert imported.read_bytes() == keycloak_server.REALM_FILE.read_bytes()

    database = home / "data" / "h2"
    database.mkdir()
    (database / "keycloakdb.mv.db").write_text("realm as imported")
    keycloak_server._prepare_home(config)  # the same realm file: the database is kept
    assert (database / "keycloakdb.mv.db").exists()

    (home / "realm.sha256").write_text("the digest of an older realm file\n")
    keycloak_server._prepare_home(config)
    assert not database.exists()  # dropped: the next start imports the realm again
