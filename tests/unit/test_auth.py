"""Staff authentication: token verification, FastAPI dependencies, the development issuer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from prometheus_client import REGISTRY

from shared.runtime.auth import (
    AuthenticationError,
    CurrentStaff,
    DevIssuer,
    JwtVerifier,
    Role,
    Staff,
    ensure_same_unit,
    require_roles,
    verifier_from_settings,
)
from shared.runtime.http import PROBLEM_JSON, Problem, install_problem_handlers
from shared.runtime.settings import ServiceSettings
from shared.tools.tokens import main

ISSUER = "https://idp.example.gov.vn"
AUDIENCE = "dvc-platform"


@pytest.fixture
def dev(tmp_path: Path) -> DevIssuer:
    return DevIssuer(tmp_path / "dev-issuer")


@pytest.fixture
def verifier(dev: DevIssuer) -> JwtVerifier:
    return dev.verifier()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u1",
        "iat": now,
        "exp": now + 600,
        "roles": ["officer"],
        "unit": "G12",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _public_pem(private_key: Any) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _reason(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(token)
    return caught.value.reason


# --------------------------------------------------------------------------- verification


def test_valid_token_gives_staff(dev: DevIssuer, verifier: JwtVerifier) -> None:
    token = dev.mint("u1", [Role.officer, "unit_head"], "G12", name="Nguyễn Văn A")
    staff = verifier.verify(token)
    assert staff == Staff(
        subject="u1",
        name="Nguyễn Văn A",
        unit="G12",
        roles=frozenset({Role.officer, Role.unit_head}),
    )
    assert staff.has_role(Role.unit_head, Role.admin)
    assert not staff.has_role(Role.admin)


def test_expired_token_is_rejected(dev: DevIssuer, verifier: JwtVerifier) -> None:
    assert _reason(verifier, dev.mint("u1", ["officer"], "G12", ttl_seconds=-120)) == "expired"


def test_small_clock_skew_is_tolerated(dev: DevIssuer, verifier: JwtVerifier) -> None:
    assert verifier.verify(dev.mint("u1", ["officer"], "G12", ttl_seconds=-5)).subject == "u1"


def test_missing_exp_is_rejected(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = JwtVerifier.from_text(_public_pem(key), issuer=ISSUER, audience=AUDIENCE)
    token = jwt.encode(_claims(exp=None), key, algorithm="RS256")
    assert _reason(verifier, token) == "missing_claim"


def test_future_iat_is_rejected() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    verifier = JwtVerifier.from_text(_public_pem(key), issuer=ISSUER, audience=AUDIENCE)
    future = int(time.time()) + 3600
    token = jwt.encode(_claims(iat=future, exp=future + 600), key, algorithm="ES256")
    assert _reason(verifier, token) == "not_yet_valid"


def test_wrong_issuer_and_audience_are_rejected(tmp_path: Path) -> None:
    dev = DevIssuer(tmp_path, issuer="someone-else")
    verifier = JwtVerifier.from_file(dev.public_key_path, issuer=ISSUER, audience=AUDIENCE)
    assert _reason(verifier, dev.mint("u1", ["officer"], "G12")) == "invalid_issuer"

    dev = DevIssuer(tmp_path, issuer=ISSUER, audience="another-platform")
    assert _reason(verifier, dev.mint("u1", ["officer"], "G12")) == "invalid_audience"


def test_token_signed_by_another_key_is_rejected(tmp_path: Path, verifier: JwtVerifier) -> None:
    intruder = DevIssuer(tmp_path / "intruder")
    assert _reason(verifier, intruder.mint("u1", ["admin"], None)) == "invalid_signature"


def test_alg_none_is_rejected(verifier: JwtVerifier) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims(iss="dvc-dev-issuer", roles=["admin"])).encode())
    assert _reason(verifier, f"{header}.{payload}.") == "algorithm"


def test_hs256_signed_with_public_key_is_rejected(dev: DevIssuer, verifier: JwtVerifier) -> None:
    """The classic key-confusion attack: HMAC keyed with the verifier's own public key."""
    secret = dev.public_key_path.read_bytes()
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims(iss="dvc-dev-issuer", roles=["admin"])).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = _b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
    assert _reason(verifier, f"{header}.{payload}.{signature}") == "algorithm"


def test_garbage_is_rejected(verifier: JwtVerifier) -> None:
    assert _reason(verifier, "not-a-jwt") == "malformed"
    assert _reason(verifier, "x" * 10_000) == "malformed"


def test_unknown_roles_are_ignored_and_no_role_is_rejected(
    dev: DevIssuer, verifier: JwtVerifier
) -> None:
    staff = verifier.verify(dev.mint("u1", ["officer", "superuser", "viewer"], "G12"))
    assert staff.roles == frozenset({Role.officer})
    assert _reason(verifier, dev.mint("u1", ["superuser"], "G12")) == "no_role"
    assert _reason(verifier, dev.mint("u1", [], "G12")) == "no_role"


def test_jwks_selects_key_by_kid() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {
                **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())),
                "kid": "rsa-1",
                "use": "sig",
            },
            {
                **json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())),
                "kid": "ec-1",
                "alg": "ES256",
            },
        ]
    }
    verifier = JwtVerifier.from_text(json.dumps(jwks), issuer=ISSUER, audience=AUDIENCE)

    by_rsa = jwt.encode(_claims(sub="a"), rsa_key, algorithm="PS256", headers={"kid": "rsa-1"})
    by_ec = jwt.encode(_claims(sub="b"), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert verifier.verify(by_rsa).subject == "a"
    assert verifier.verify(by_ec).subject == "b"

    unknown = jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "ec-9"})
    assert _reason(verifier, unknown) == "unknown_key"
    # The kid names a key that cannot verify this algorithm.
    mismatched = jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "rsa-1"})
    assert _reason(verifier, mismatched) == "unknown_key"
    impostor = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(_claims(), impostor, algorithm="ES256", headers={"kid": "ec-1"})
    assert _reason(verifier, forged) == "invalid_signature"


def test_pem_bundle_accepts_any_listed_key(tmp_path: Path) -> None:
    old = DevIssuer(tmp_path / "old", issuer=ISSUER, audience=AUDIENCE)
    new = DevIssuer(tmp_path / "new", issuer=ISSUER, audience=AUDIENCE)
    bundle = tmp_path / "keys.pem"
    bundle.write_text(old.public_key_path.read_text() + new.public_key_path.read_text())
    verifier = JwtVerifier.from_file(bundle, issuer=ISSUER, audience=AUDIENCE)
    assert verifier.verify(old.mint("a", ["officer"], "G1")).subject == "a"
    assert verifier.verify(new.mint("b", ["officer"], "G1")).subject == "b"


def test_symmetric_or_private_keys_are_refused_at_load() -> None:
    oct_jwks = {"keys": [{"kty": "oct", "k": _b64(b"secret"), "kid": "h"}]}
    with pytest.raises(ValueError, match="key type"):
        JwtVerifier.from_text(json.dumps(oct_jwks), issuer=ISSUER, audience=AUDIENCE)
    private_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="public keys only"):
        JwtVerifier.from_text(private_pem, issuer=ISSUER, audience=AUDIENCE)


# --------------------------------------------------------------------------- FastAPI


def _app(verifier: JwtVerifier) -> FastAPI:
    app = FastAPI(title="intake")
    install_problem_handlers(app)
    app.state.jwt_verifier = verifier

    @app.get("/me")
    async def me(staff: CurrentStaff) -> dict[str, Any]:
        return {"subject": staff.subject, "unit": staff.unit}

    @app.post("/approve")
    async def approve(
        staff: Annotated[Staff, Depends(require_roles(Role.unit_head, Role.admin))],
    ) -> dict[str, str]:
        return {"approved_by": staff.subject}

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _failures(reason: str) -> float:
    return REGISTRY.get_sample_value("dvc_auth_failures_total", {"reason": reason}) or 0.0


async def test_missing_header_is_401_problem(verifier: JwtVerifier) -> None:
    before = _failures("missing")
    async with _client(_app(verifier)) as client:
        response = await client.get("/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["title"] == "Chưa xác thực (authentication required)"
    assert _failures("missing") == before + 1


async def test_invalid_token_is_401_with_invalid_token_challenge(
    tmp_path: Path, verifier: JwtVerifier
) -> None:
    intruder = DevIssuer(tmp_path / "intruder")
    headers = {"Authorization": f"Bearer {intruder.mint('u1', ['admin'], None)}"}
    async with _client(_app(verifier)) as client:
        response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["status"] == 401


async def test_roles_gate_the_endpoint(dev: DevIssuer, verifier: JwtVerifier) -> None:
    officer = {"Authorization": f"Bearer {dev.mint('u1', ['officer'], 'G12')}"}
    head = {"Authorization": f"Bearer {dev.mint('u2', ['unit_head'], 'G12')}"}
    async with _client(_app(verifier)) as client:
        me = await client.get("/me", headers=officer)
        forbidden = await client.post("/approve", headers=officer)
        allowed = await client.post("/approve", headers=head)
    assert me.json() == {"subject": "u1", "unit": "G12"}
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == PROBLEM_JSON
    assert forbidden.json()["title"] == "Không có quyền (forbidden)"
    assert REGISTRY.get_sample_value(
        "dvc_forbidden_total", {"service": "intake", "action": "POST /approve"}
    )
    assert allowed.status_code == 200
    assert allowed.json() == {"approved_by": "u2"}


async def test_missing_verifier_fails_closed(dev: DevIssuer) -> None:
    app = _app(dev.verifier())
    del app.state.jwt_verifier
    headers = {"Authorization": f"Bearer {dev.mint('u1', ['officer'], 'G12')}"}
    async with _client(app) as client:
        assert (await client.get("/me", headers=headers)).status_code == 500


def test_require_roles_rejects_unknown_role_names() -> None:
    with pytest.raises(ValueError):
        require_roles("superuser")


def test_ensure_same_unit() -> None:
    officer = Staff(subject="u1", unit="G12", roles=frozenset({Role.officer}))
    admin = Staff(subject="a1", unit=None, roles=frozenset({Role.admin}))
    unitless = Staff(subject="u2", unit=None, roles=frozenset({Role.officer}))

    ensure_same_unit(officer, "G12")
    ensure_same_unit(admin, "G12")
    for staff, unit in [(officer, "G13"), (unitless, None), (unitless, "G12")]:
        with pytest.raises(Problem) as caught:
            ensure_same_unit(staff, unit)
        assert caught.value.status == 403


# --------------------------------------------------------------------------- dev issuer, settings


def test_dev_issuer_keeps_its_private_key_private_and_stable(tmp_path: Path) -> None:
    first = DevIssuer(tmp_path)
    mode = stat.S_IMODE(first.private_key_path.stat().st_mode)
    assert mode == 0o600
    second = DevIssuer(tmp_path)
    assert second.kid == first.kid
    assert first.verifier().verify(second.mint("u1", ["officer"], "G1")).subject == "u1"


def test_verifier_from_settings_uses_dev_issuer_outside_production(tmp_path: Path) -> None:
    settings = ServiceSettings(environment="test")
    verifier = verifier_from_settings(settings, dev_issuer_dir=tmp_path)
    token = DevIssuer(tmp_path).mint("u1", ["officer"], "G12")
    assert verifier.verify(token).unit == "G12"


def test_verifier_from_settings_in_production_uses_configured_key(tmp_path: Path) -> None:
    real = DevIssuer(tmp_path / "idp", issuer=ISSUER, audience=AUDIENCE)
    settings = ServiceSettings(
        environment="production",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_public_key_file=str(real.public_key_path),
    )
    dev_dir = tmp_path / "dev"
    verifier = verifier_from_settings(settings, dev_issuer_dir=dev_dir)
    assert verifier.verify(real.mint("u1", ["admin"], None)).has_role(Role.admin)
    assert not dev_dir.exists()

    # Even if validation were bypassed, production never falls back to the dev issuer.
    unchecked = ServiceSettings.model_construct(environment="production", jwt_public_key_file=None)
    with pytest.raises(RuntimeError):
        verifier_from_settings(unchecked, dev_issuer_dir=dev_dir)
    assert not dev_dir.exists()


def test_cli_mints_a_verifiable_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DVC_ENVIRONMENT", raising=False)
    monkeypatch.delenv("DVC_JWT_ISSUER", raising=False)
    monkeypatch.delenv("DVC_JWT_AUDIENCE", raising=False)
    argv = [
        "mint",
        "--sub",
        "u1",
        "--role",
        "officer",
        "--unit",
        "G12",
        "--name",
        "Lan",
        "--ttl",
        "60",
        "--dir",
        str(tmp_path),
    ]
    assert main(argv) == 0
    token = capsys.readouterr().out.strip()
    staff = DevIssuer(tmp_path).verifier().verify(token)
    assert (staff.subject, staff.unit, staff.name) == ("u1", "G12", "Lan")


def test_cli_refuses_production(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVC_ENVIRONMENT", "production")
    assert main(["mint", "--sub", "u1", "--role", "admin", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().out == ""
    assert not any(tmp_path.iterdir())
    with pytest.raises(RuntimeError):
        DevIssuer(tmp_path)


@pytest.mark.parametrize("variable", ["DVC_INTAKE_ENVIRONMENT", "DVC_PROCESSING_ENVIRONMENT"])
def test_the_development_issuer_refuses_what_deployments_really_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """Deployments set each service's own variable (compose, Kubernetes), not DVC_ENVIRONMENT."""
    monkeypatch.delenv("DVC_ENVIRONMENT", raising=False)
    monkeypatch.setenv(variable, "production")
    with pytest.raises(RuntimeError):
        DevIssuer(tmp_path)
    assert main(["mint", "--sub", "u1", "--role", "admin", "--dir", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_the_development_issuer_refuses_a_production_service_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("DVC_") and n.endswith("ENVIRONMENT")]:
        monkeypatch.delenv(name)
    with pytest.raises(RuntimeError):
        DevIssuer(tmp_path, environment="production")
    DevIssuer(tmp_path, environment="development")  # and development still works


def test_a_service_token_is_good_at_its_own_service_only(tmp_path: Path) -> None:
    """Intake's credential for processing (audience dvc-processing, role result_reader) is
    accepted by processing and by no other service; staff tokens by every service."""
    from services.intake.settings import IntakeSettings
    from services.processing.settings import ProcessingSettings

    issuer = DevIssuer(tmp_path)
    narrow = DevIssuer(tmp_path, audience="dvc-processing").mint(
        "svc-intake", [Role.result_reader], None
    )
    staff = issuer.mint("u1", [Role.officer], "G12")
    processing = verifier_from_settings(ProcessingSettings(), dev_issuer_dir=tmp_path)
    intake = verifier_from_settings(IntakeSettings(), dev_issuer_dir=tmp_path)
    assert processing.verify(narrow).roles == {Role.result_reader}
    with pytest.raises(AuthenticationError):
        intake.verify(narrow)
    assert processing.verify(staff).subject == intake.verify(staff).subject == "u1"
