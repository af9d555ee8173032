"""JwksVerifier against a local HTTP server publishing a discovery document and a key set:
caching, refresh on an unknown kid (rate-limited), key rotation, provider outages."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI

from shared.runtime.auth import (
    AuthenticationError,
    CurrentStaff,
    JwksVerifier,
    JwtVerifier,
    KeysUnavailable,
    Role,
    verifier_from_settings,
)
from shared.runtime.http import PROBLEM_JSON, install_problem_handlers
from shared.runtime.settings import ServiceSettings

AUDIENCE = "dvc-platform"


class Provider:
    """An identity provider's published documents, served on 127.0.0.1, and the private keys
    behind them (the test signs tokens as the provider would)."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}/realms/dvc"
        self.jwks_path = "/realms/dvc/protocol/openid-connect/certs"
        self.private: dict[str, Any] = {}  # kid -> private key
        self.published: list[str] = []  # kids in the key set, in order
        self.extra_jwks: list[dict[str, Any]] = []  # other entries of the set
        self.discovered_issuer: str | None = None  # None: self.issuer
        self.down = False
        self.hits: list[str] = []
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def jwks_url(self) -> str:
        return self.issuer.split("/realms/")[0] + self.jwks_path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.hits.append(self.path)
                if provider.down:
                    self._answer(503, {"error": "down"})
                elif self.path == "/realms/dvc/.well-known/openid-configuration":
                    self._answer(
                        200,
                        {
                            "issuer": provider.discovered_issuer or provider.issuer,
                            "jwks_uri": provider.jwks_url,
                        },
                    )
                elif self.path == provider.jwks_path:
                    self._answer(200, provider.jwks())
                else:
                    self._answer(404, {})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def add_key(self, kid: str, kind: str = "RSA") -> None:
        if kind == "RSA":
            self.private[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.private[kid] = ec.generate_private_key(ec.SECP256R1())
        self.published.append(kid)

    def retire(self, kid: str) -> None:
        self.published.remove(kid)

    def jwks(self) -> dict[str, Any]:
        keys: list[dict[str, Any]] = []
        for kid in self.published:
            key = self.private[kid]
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
                jwk["alg"] = "RS256"
            else:
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
                jwk["alg"] = "ES256"
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": [*keys, *self.extra_jwks]}

    def token(self, kid: str, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "0b6f0c1e-officer",
            "iat": now,
            "exp": now + 300,
            "roles": ["officer", "default-roles-dvc"],
            "unit": "SHTT",
            "name": "Nguyễn Thị Lan",
            **overrides,
        }
        key = self.private[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})

    def jwks_fetches(self) -> int:
        return self.hits.count(self.jwks_path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def provider() -> Iterator[Provider]:
    served = Provider()
    served.add_key("k1")
    yield served
    served.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _verifier(provider: Provider, clock: Clock, **options: Any) -> JwksVerifier:
    return JwksVerifier(issuer=provider.issuer, audience=AUDIENCE, clock=clock, **options)


def test_discovers_the_key_set_and_caches_it(provider: Provider, clock: Clock) -> None:
    verifier = _verifier(provider, clock)
    assert verifier.jwks_url is None  # nothing fetched before the first token

    staff = verifier.verify(provider.token("k1"))
    assert staff.subject == "0b6f0c1e-officer"
    assert staff.unit == "SHTT"
    assert staff.roles == frozenset({Role.officer})  # the provider's own roles are ignored
    assert verifier.jwks_url == provider.jwks_url
    for _ in range(20):
        verifier.verify(provider.token("k1"))
    assert provider.hits.count("/realms/dvc/.well-known/openid-configuration") == 1
    assert provider.jwks_fetches() == 1


def test_a_given_jwks_url_skips_discovery(provider: Provider, clock: Clock) -> None:
    verifier = _verifier(provider, clock, jwks_url=provider.jwks_url)
    assert verifier.verify(provider.token("k1")).unit == "SHTT"
    assert provider.hits == [provider.jwks_path]


def test_rotation_new_key_appears_then_old_key_disappears(provider: Provider, clock: Clock) -> None:
    verifier = _verifier(provider, clock, min_refresh_seconds=10)
    old_token = provider.token("k1")
    verifier.verify(old_token)
    assert verifier.key_ids == {"k1"}

    # The provider adds a key and signs with it: its first token fetches the set again.
    provider.add_key("k2", kind="EC")
    clock.now += 11
    assert verifier.verify(provider.token("k2")).subject == "0b6f0c1e-officer"
    assert verifier.key_ids == {"k1", "k2"}
    assert provider.jwks_fetches() == 2
    verifier.verify(old_token)  # tokens signed before the rotation still verify

    # The old key is retired; once the set is fetched again, its tokens no longer verify.
    provider.retire("k1")
    provider.add_key("k3")
    clock.now += 11
    verifier.verify(provider.token("k3"))
    assert verifier.key_ids == {"k2", "k3"}
    with pytest.raises(AuthenticationError) as refused:
        verifier.verify(old_token)
    assert refused.value.reason == "unknown_key"


def test_unknown_kids_refresh_at_most_once_per_interval(provider: Provider, clock: Clock) -> None:
    verifier = _verifier(provider, clock, min_refresh_seconds=30)
    verifier.verify(provider.token("k1"))
    provider.add_key("forged")
    provider.retire("forged")  # signed by a key the provider never published
    forged = provider.token("forged")

    clock.now += 31
    for _ in range(50):
        with pytest.raises(AuthenticationError) as refused:
            verifier.verify(forged)
        assert refused.value.reason == "unknown_key"
    assert provider.jwks_fetches() == 2  # the first load, then one refresh for 50 tokens

    clock.now += 31
    with pytest.raises(AuthenticationError):
        verifier.verify(forged)
    assert provider.jwks_fetches() == 3


def test_a_known_kid_with_a_bad_signature_fetches_nothing(provider: Provider, clock: Clock) -> None:
    verifier = _verifier(provider, clock, min_refresh_seconds=0)
    token = provider.token("k1")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    verifier.verify(token)
    with pytest.raises(AuthenticationError) as refused:
        verifier.verify(tampered)
    assert refused.value.reason == "invalid_signature"
    assert provider.jwks_fetches() == 1


def test_issuer_and_audience_are_still_checked(provider: Provider, clock: Clock) -> None:
    verifier = _verifier(provider, clock)
    with pytest.raises(AuthenticationError) as wrong_audience:
        verifier.verify(provider.token("k1", aud="account"))
    assert wrong_audience.value.reason == "invalid_audience"
    with pytest.raises(AuthenticationError) as wrong_issuer:
        verifier.verify(provider.token("k1", iss="http://127.0.0.1:1/realms/other"))
    assert wrong_issuer.value.reason == "invalid_issuer"
    with pytest.raises(AuthenticationError) as hs256:
        verifier.verify(jwt.encode({"sub": "x"}, "secret" * 8, algorithm="HS256"))
    assert hs256.value.reason == "algorithm"


def test_provider_down_before_the_first_fetch_is_unavailable_not_refused(
    provider: Provider, clock: Clock
) -> None:
    provider.down = True
    verifier = _verifier(provider, clock, min_refresh_seconds=5)
    with pytest.raises(KeysUnavailable):
        verifier.verify(provider.token("k1"))
    with pytest.raises(KeysUnavailable):
        verifier.verify(provider.token("k1"))  # within the interval: no new attempt
    assert len(provider.hits) == 1

    provider.down = False
    clock.now += 6
    assert verifier.verify(provider.token("k1")).unit == "SHTT"


def test_expired_cache_is_refreshed_and_kept_when_the_provider_is_down(
    provider: Provider, clock: Clock
) -> None:
    verifier = _verifier(provider, clock, max_age_seconds=600, min_refresh_seconds=10)
    verifier.verify(provider.token("k1"))
    clock.now += 601
    provider.down = True
    verifier.verify(provider.token("k1"))  # the refresh failed: the cached keys still serve
    assert provider.jwks_fetches() == 2
    provider.down = False
    clock.now += 11
    verifier.verify(provider.token("k1"))
    assert provider.jwks_fetches() == 3


def test_discovery_must_name_the_same_issuer(provider: Provider, clock: Clock) -> None:
    provider.discovered_issuer = "http://127.0.0.1:1/realms/evil"
    verifier = _verifier(provider, clock)
    with pytest.raises(KeysUnavailable, match="another issuer"):
        verifier.verify(provider.token("k1"))
    assert provider.jwks_fetches() == 0


def test_published_set_skips_keys_it_cannot_use_and_refuses_private_ones(
    provider: Provider, clock: Clock
) -> None:
    provider.extra_jwks = [
        {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "AKP", "alg": "ML-DSA-65", "kid": "pq", "pub": "AAAA"},
        {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
    ]
    verifier = _verifier(provider, clock, min_refresh_seconds=0)
    verifier.verify(provider.token("k1"))
    assert verifier.key_ids == {"k1"}

    leaked = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048)))
    provider.extra_jwks = [{**leaked, "kid": "leaked", "use": "sig"}]
    provider.add_key("k2")
    with pytest.raises(KeysUnavailable, match="private key"):
        verifier.verify(provider.token("k2"))


def test_plain_http_only_to_loopback_unless_allowed() -> None:
    with pytest.raises(ValueError, match="HTTPS"):
        JwksVerifier(issuer="x", audience=AUDIENCE, jwks_url="http://sso.most.gov.vn/certs")
    JwksVerifier(
        issuer="x", audience=AUDIENCE, jwks_url="http://keycloak:8080/certs", allow_http=True
    )
    JwksVerifier(issuer="x", audience=AUDIENCE, jwks_url="https://sso.most.gov.vn/certs")
    JwksVerifier(issuer="x", audience=AUDIENCE, jwks_url="http://localhost:8080/certs")
    discovering = JwksVerifier(issuer="http://sso.most.gov.vn/realms/dvc", audience=AUDIENCE)
    with pytest.raises(ValueError, match="HTTPS"):
        discovering.verify("a.b.c")


# --------------------------------------------------------------------------- the services' path


def _app(verifier: JwtVerifier) -> FastAPI:
    app = FastAPI(title="processing")
    install_problem_handlers(app)
    app.state.jwt_verifier = verifier

    @app.get("/me")
    async def me(staff: CurrentStaff) -> dict[str, Any]:
        return {"subject": staff.subject, "unit": staff.unit, "roles": sorted(staff.roles)}

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_the_dependency_fetches_without_blocking_and_follows_rotation(
    provider: Provider, clock: Clock
) -> None:
    verifier = _verifier(provider, clock, min_refresh_seconds=10)
    async with _client(_app(verifier)) as client:
        first = await client.get("/me", headers={"Authorization": f"Bearer {provider.token('k1')}"})
        assert first.status_code == 200
        assert first.json() == {"subject": "0b6f0c1e-officer", "unit": "SHTT", "roles": ["officer"]}

        provider.add_key("k2")
        clock.now += 11
        rotated = await client.get(
            "/me", headers={"Authorization": f"Bearer {provider.token('k2')}"}
        )
        assert rotated.status_code == 200
        assert provider.jwks_fetches() == 2


async def test_the_dependency_answers_503_while_the_keys_cannot_be_fetched(
    provider: Provider, clock: Clock
) -> None:
    provider.down = True
    verifier = _verifier(provider, clock, min_refresh_seconds=5)
    async with _client(_app(verifier)) as client:
        token = provider.token("k1")
        answer = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 503
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert answer.headers["retry-after"] == "5"
        assert "identity provider" in answer.json()["title"]

        provider.down = False
        clock.now += 6
        answer = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


async def test_concurrent_requests_share_one_fetch(provider: Provider, clock: Clock) -> None:
    import asyncio

    verifier = _verifier(provider, clock)
    tokens = [provider.token("k1") for _ in range(10)]
    results = await asyncio.gather(*(verifier.averify(token) for token in tokens))
    assert {staff.unit for staff in results} == {"SHTT"}
    assert provider.jwks_fetches() == 1


# --------------------------------------------------------------------------- settings


def test_settings_with_an_issuer_url_verify_against_its_key_set(
    provider: Provider, tmp_path: Path
) -> None:
    settings = ServiceSettings(jwt_issuer=provider.issuer)
    verifier = verifier_from_settings(settings, dev_issuer_dir=tmp_path / "dev")
    assert isinstance(verifier, JwksVerifier)
    assert verifier.verify(provider.token("k1")).unit == "SHTT"
    assert not (tmp_path / "dev").exists()  # no development key pair made


def test_settings_with_a_jwks_url_use_it(provider: Provider, tmp_path: Path) -> None:
    class WithJwks(ServiceSettings):
        jwt_jwks_url: str | None = None

    settings = WithJwks(jwt_issuer="keycloak-dvc", jwt_jwks_url=provider.jwks_url)
    verifier = verifier_from_settings(settings, dev_issuer_dir=tmp_path)
    assert isinstance(verifier, JwksVerifier)
    assert verifier.jwks_url == provider.jwks_url
    token = provider.token("k1", iss="keycloak-dvc")
    assert verifier.verify(token).subject == "0b6f0c1e-officer"
    assert provider.hits == [provider.jwks_path]


def test_a_key_file_still_wins_over_the_issuer_url(provider: Provider, tmp_path: Path) -> None:
    pem = (
        provider.private["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "key.pem").write_bytes(pem)
    settings = ServiceSettings(
        jwt_issuer=provider.issuer, jwt_public_key_file=str(tmp_path / "key.pem")
    )
    verifier = verifier_from_settings(settings, dev_issuer_dir=tmp_path / "dev")
    assert not isinstance(verifier, JwksVerifier)
    assert verifier.verify(provider.token("k1")).unit == "SHTT"
    assert provider.hits == []
