"""Staff authentication: bearer JWTs signed by the identity provider, verified with its public keys.

Every service's officer and admin endpoints depend on `CurrentStaff` (any authenticated staff) or
on `require_roles(...)`. The verifier lives on `app.state.jwt_verifier` (see
`verifier_from_settings`), so each app — and each test app — carries its own keys.

Only asymmetric signatures are accepted: the services hold public keys and nothing that could mint
a token. The keys come from a file (`JwtVerifier`), or from the identity provider's published key
set (`JwksVerifier`: the JWKS URL, or discovered from the issuer URL; cached, refreshed when a token
names an unknown key). Outside production a local development issuer (`DevIssuer`) stands in for
the identity provider; `python -m shared.auth mint ...` prints a token signed by it.
"""

# No `from __future__ import annotations`: FastAPI resolves dependency annotations at runtime and
# cannot see closure variables (`Depends(authenticate)`) through string annotations.
import argparse
import asyncio
import base64
import hashlib
import ipaddress
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict

from shared.http import Problem
from shared.settings import ServiceSettings

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AuthenticationError",
    "CurrentStaff",
    "DevIssuer",
    "JwksVerifier",
    "JwtVerifier",
    "KeysUnavailable",
    "Role",
    "Staff",
    "current_staff",
    "default_dev_issuer_dir",
    "ensure_same_unit",
    "main",
    "require_roles",
    "staff_dependency",
    "verifier_from_app",
    "verifier_from_settings",
]

AUTH_FAILURES = Counter(
    "dvc_auth_failures_total",
    "Bearer tokens rejected, by reason (missing, expired, invalid_signature, ...).",
    ["reason"],
)
FORBIDDEN = Counter(
    "dvc_forbidden_total",
    "Authenticated staff refused an action (missing role or other unit).",
    ["service", "action"],
)

# Asymmetric only. HS* would let anyone holding the (public) verification key mint tokens.
ALLOWED_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}
)
LEEWAY_SECONDS = 30
# Far above any real staff token; bounds the work done on garbage input.
MAX_TOKEN_LENGTH = 8192
DEV_ISSUER = "dvc-dev-issuer"
DEV_AUDIENCE = "dvc-platform"

UNAUTHENTICATED_TITLE = "Chưa xác thực (authentication required)"
KEYS_UNAVAILABLE_TITLE = "Chưa kiểm tra được đăng nhập (identity provider unavailable)"
FORBIDDEN_TITLE = "Không có quyền (forbidden)"


class Role(StrEnum):
    officer = "officer"
    unit_head = "unit_head"
    counter_officer = "counter_officer"
    admin = "admin"
    # A service's own narrow credential (no person): intake reading issued results from
    # processing, in a token whose audience is processing's alone (`dvc-processing`).
    result_reader = "result_reader"


# A verifier accepts tokens whose `aud` names any of these: the platform's (staff, whom every
# service serves) or the service's own (service-to-service tokens, good at that service only).
Audience = str | Sequence[str]


class Staff(BaseModel):
    """The authenticated staff member behind a request."""

    model_config = ConfigDict(frozen=True)

    subject: str
    name: str | None = None
    unit: str | None = None  # unit code, e.g. "G12"; admins may have none
    roles: frozenset[Role]

    def has_role(self, *roles: Role | str) -> bool:
        """True when the staff holds at least one of `roles`."""
        return any(role in self.roles for role in roles)

    @property
    def is_admin(self) -> bool:
        return Role.admin in self.roles


class AuthenticationError(Exception):
    """A bearer token was refused. `reason` is a short, metric-friendly code."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


class KeysUnavailable(Exception):
    """The identity provider's keys could not be fetched: the token is neither accepted nor
    refused (503, not 401)."""


# --------------------------------------------------------------------------- key loading

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.DOTALL)
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384"}


@dataclass(frozen=True, slots=True)
class _VerificationKey:
    key: PublicKey
    algorithms: frozenset[str]
    kid: str | None = None


def _algorithms_for(key: object) -> frozenset[str]:
    """The allowed algorithms a key can verify; binding them prevents key/alg confusion."""
    if isinstance(key, rsa.RSAPublicKey):
        return frozenset({"RS256", "RS384", "RS512", "PS256"})
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        return frozenset({alg} if alg else ())
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


def _key_entry(key: Any, kid: str | None = None, alg: str | None = None) -> _VerificationKey:
    algorithms = _algorithms_for(key)
    if alg is not None:
        algorithms &= {alg}
    if not algorithms:
        raise ValueError(f"unsupported verification key {type(key).__name__} (alg={alg})")
    return _VerificationKey(key=key, algorithms=algorithms, kid=kid)


def _parse_pem(text: str) -> list[_VerificationKey]:
    keys: list[_VerificationKey] = []
    for match in _PEM_BLOCK.finditer(text):
        block, label = match.group(0).encode(), match.group(1)
        public: Any  # a certificate's key or a bare public key; `_key_entry` checks its kind
        if label == "CERTIFICATE":
            public = x509.load_pem_x509_certificate(block).public_key()
        elif label in {"PUBLIC KEY", "RSA PUBLIC KEY"}:
            public = serialization.load_pem_public_key(block)
        else:
            raise ValueError(f"unexpected PEM block {label!r}: expected public keys only")
        keys.append(_key_entry(public))
    return keys


def _parse_jwks(document: Any, *, published: bool = False) -> list[_VerificationKey]:
    """The signature keys of a JWKS (or of a single JWK). `published`: a provider's live key set,
    where a key of a type or curve we cannot use is skipped instead of refused (a provider may
    publish keys for other relying parties); a private key is refused either way."""
    jwks = document.get("keys") if isinstance(document, dict) and "keys" in document else None
    entries = jwks if isinstance(jwks, list) else [document]
    keys: list[_VerificationKey] = []
    for jwk in entries:
        if not isinstance(jwk, dict):
            raise ValueError("a JWK must be a JSON object")
        if "d" in jwk:
            raise ValueError("the JWK set contains a private key; publish public keys only")
        if jwk.get("kty") not in {"RSA", "EC", "OKP"}:
            if published:
                continue
            # "oct" (shared secrets) and anything unknown have no place in a public key set.
            raise ValueError(f"unsupported JWK key type {jwk.get('kty')!r}")
        if jwk.get("use", "sig") != "sig":
            continue
        alg = jwk.get("alg")
        if alg is not None and alg not in ALLOWED_ALGORITHMS:
            continue  # e.g. an ES512 key published for other relying parties
        try:
            key = jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWTError:
            if published:
                continue
            raise
        if _algorithms_for(key):
            keys.append(_key_entry(key, kid=jwk.get("kid"), alg=alg))
    return keys


def parse_public_keys(text: str) -> list[_VerificationKey]:
    """PEM text (public keys or certificates, one or more) or a JWKS / single JWK JSON document."""
    stripped = text.strip()
    keys = _parse_jwks(json.loads(stripped)) if stripped.startswith("{") else _parse_pem(stripped)
    if not keys:
        raise ValueError("no usable public key found")
    return keys


# --------------------------------------------------------------------------- verification


class JwtVerifier:
    """Verifies staff bearer tokens against an issuer, an audience and a set of public keys."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: Audience,
        keys: Sequence[_VerificationKey],
        leeway_seconds: float = LEEWAY_SECONDS,
    ) -> None:
        if not keys:
            raise ValueError("JwtVerifier needs at least one public key")
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self._keys = tuple(keys)

    @classmethod
    def from_text(
        cls, text: str, *, issuer: str, audience: Audience, leeway_seconds: float = LEEWAY_SECONDS
    ) -> "JwtVerifier":
        """From PEM public key(s) / certificate(s) or a JWKS JSON document."""
        return cls(
            issuer=issuer,
            audience=audience,
            keys=parse_public_keys(text),
            leeway_seconds=leeway_seconds,
        )

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        issuer: str,
        audience: Audience,
        leeway_seconds: float = LEEWAY_SECONDS,
    ) -> "JwtVerifier":
        text = Path(path).read_text(encoding="utf-8")
        return cls.from_text(text, issuer=issuer, audience=audience, leeway_seconds=leeway_seconds)

    def _candidates(self, alg: str, kid: Any) -> list[_VerificationKey]:
        usable = [k for k in self._keys if alg in k.algorithms]
        if kid is None:
            return usable
        if not isinstance(kid, str):
            raise AuthenticationError("malformed", "The token header has an invalid key id.")
        named = [k for k in usable if k.kid == kid]
        # Keys loaded from PEM carry no kid; they remain candidates for any kid.
        return named or [k for k in usable if k.kid is None]

    def verify(self, token: str) -> Staff:
        """The staff a token identifies; raises `AuthenticationError` on any defect."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("malformed", "The bearer token is malformed.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthenticationError("malformed", "The bearer token is malformed.") from None
        alg = header.get("alg")
        # Checked before any key is touched: "none" and HS* never reach PyJWT.
        if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
            raise AuthenticationError(
                "algorithm", "The token is not signed with an accepted algorithm."
            )
        candidates = self._candidates(alg, header.get("kid"))
        if not candidates:
            raise AuthenticationError("unknown_key", "No known key can verify this token.")

        for candidate in candidates:
            try:
                claims = jwt.decode(
                    token,
                    candidate.key,
                    algorithms=[alg],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway_seconds,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
            except jwt.InvalidSignatureError:
                continue  # another key of the set may have signed it (rotation)
            except jwt.ExpiredSignatureError:
                raise AuthenticationError("expired", "The bearer token has expired.") from None
            except jwt.ImmatureSignatureError:
                raise AuthenticationError(
                    "not_yet_valid", "The bearer token is not valid yet."
                ) from None
            except jwt.InvalidIssuerError:
                raise AuthenticationError(
                    "invalid_issuer", "The token was not issued by the trusted issuer."
                ) from None
            except jwt.InvalidAudienceError:
                raise AuthenticationError(
                    "invalid_audience", "The token is not meant for this platform."
                ) from None
            except jwt.MissingRequiredClaimError as exc:
                raise AuthenticationError(
                    "missing_claim", f"The token lacks the {exc.claim!r} claim."
                ) from None
            except jwt.InvalidTokenError:
                raise AuthenticationError("malformed", "The bearer token is malformed.") from None
            return _staff_from_claims(claims)
        raise AuthenticationError("invalid_signature", "The token signature is not valid.")

    async def averify(self, token: str) -> Staff:
        """`verify` for the request path; a verifier that fetches keys does so without blocking
        the event loop."""
        return self.verify(token)


def _staff_from_claims(claims: dict[str, Any]) -> Staff:
    subject, name, unit, raw_roles = (
        claims.get("sub"),
        claims.get("name"),
        claims.get("unit"),
        claims.get("roles", []),
    )
    if (
        not isinstance(subject, str)
        or not subject
        or not isinstance(name, str | None)
        or not isinstance(unit, str | None)
        or not isinstance(raw_roles, list)
    ):
        raise AuthenticationError("invalid_claims", "The token claims are malformed.")
    known = {role.value for role in Role}
    # Roles of other applications may share the token; they mean nothing here.
    roles = frozenset(Role(r) for r in raw_roles if isinstance(r, str) and r in known)
    if not roles:
        raise AuthenticationError("no_role", "The token grants no staff role on this platform.")
    return Staff(subject=subject, name=name, unit=unit or None, roles=roles)


# --------------------------------------------------------------------------- published key sets

logger = logging.getLogger(__name__)
DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_DOCUMENT_BYTES = 512 * 1024  # a key set or discovery document; real ones are a few kB


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class JwksVerifier(JwtVerifier):
    """Verifies tokens against the identity provider's published key set (JWKS), over HTTP.

    The keys are fetched at the first token and cached. A token whose `kid` is not in the cached
    set makes the verifier fetch the set again (a signing key rotated in), at most once every
    `min_refresh_seconds` so that forged kids cannot hammer the provider; a key the provider no
    longer publishes stops verifying from the next fetch on. The set is also fetched again once
    `max_age_seconds` old (a failure then keeps the cached keys). Without `jwks_url`, the
    issuer's discovery document (`<issuer>/.well-known/openid-configuration`) names it, and
    must name the same issuer.

    While no key set could be fetched yet, tokens are neither accepted nor refused:
    `KeysUnavailable` (the dependency answers 503).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: Audience,
        jwks_url: str | None = None,
        leeway_seconds: float = LEEWAY_SECONDS,
        min_refresh_seconds: float = 10.0,
        max_age_seconds: float = 600.0,
        timeout_seconds: float = 5.0,
        allow_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # No keys yet: the base class's constructor (which requires some) is not called.
        self.issuer = issuer
        self.audience = audience
        self.leeway_seconds = leeway_seconds
        self._keys: tuple[_VerificationKey, ...] = ()
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self.timeout_seconds = timeout_seconds
        self.allow_http = allow_http
        self._clock = clock
        self._jwks_url = self._checked_url(jwks_url) if jwks_url else None
        self._fetched_at: float | None = None  # the last successful fetch
        self._attempted_at: float | None = None  # the last fetch, successful or not
        self._generation = 0  # bumped by every successful fetch
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    @property
    def jwks_url(self) -> str | None:
        """The key set's URL: given, or once discovered."""
        return self._jwks_url

    @property
    def key_ids(self) -> frozenset[str]:
        """The `kid`s of the cached keys."""
        return frozenset(k.kid for k in self._keys if k.kid is not None)

    # ------------------------------------------------------------------ when to fetch

    def _may_fetch(self) -> bool:
        """The rate limit: one fetch per `min_refresh_seconds`, failed ones included."""
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self.min_refresh_seconds
        )

    def _stale(self) -> bool:
        """No keys yet, or keys past their age."""
        return self._fetched_at is None or (
            self._clock() - self._fetched_at >= self.max_age_seconds
        )

    def _unusable_without_keys(self) -> None:
        if self._fetched_at is None:
            raise KeysUnavailable("the identity provider's key set could not be fetched yet")

    # ------------------------------------------------------------------ verification

    def verify(self, token: str) -> Staff:
        if self._stale():
            self._refresh(self._generation, keep_on_failure=True)
        self._unusable_without_keys()
        seen = self._generation
        try:
            return super().verify(token)
        except AuthenticationError as exc:
            if exc.reason != "unknown_key" or not self._may_fetch():
                raise
        if self._refresh(seen, keep_on_failure=False):
            return super().verify(token)
        raise AuthenticationError("unknown_key", "No known key can verify this token.")

    async def averify(self, token: str) -> Staff:
        if self._stale():
            await self._arefresh(self._generation, keep_on_failure=True)
        self._unusable_without_keys()
        seen = self._generation
        try:
            return super().verify(token)
        except AuthenticationError as exc:
            if exc.reason != "unknown_key" or not self._may_fetch():
                raise
        if await self._arefresh(seen, keep_on_failure=False):
            return super().verify(token)
        raise AuthenticationError("unknown_key", "No known key can verify this token.")

    # ------------------------------------------------------------------ fetching
    # Under a lock: requests that find the keys missing while a fetch is under way wait for it
    # instead of fetching again. True when the keys changed since `seen_generation`.

    def _refresh(self, seen_generation: int, *, keep_on_failure: bool) -> bool:
        with self._thread_lock:
            if self._generation != seen_generation:
                return True  # another thread fetched while this one waited
            if not self._may_fetch():
                return False
            self._attempted_at = self._clock()
            try:
                with httpx.Client(timeout=self.timeout_seconds) as client:
                    keys = self._fetch_with(lambda url: self._get_json(client, url))
            except KeysUnavailable as exc:
                self._fetch_failed(exc, keep_on_failure)
                return False
            self._install(keys)
            return True

    async def _arefresh(self, seen_generation: int, *, keep_on_failure: bool) -> bool:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        async with self._async_lock:
            if self._generation != seen_generation:
                return True  # another request fetched while this one waited
            if not self._may_fetch():
                return False
            self._attempted_at = self._clock()
            try:
                async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
                    url = self._jwks_url or await self._adiscover(client)
                    keys = self._keys_from(await self._aget_json(client, url))
            except KeysUnavailable as exc:
                self._fetch_failed(exc, keep_on_failure)
                return False
            self._install(keys)
            return True

    def _fetch_with(self, get_json: Callable[[str], Any]) -> list[_VerificationKey]:
        if self._jwks_url is None:
            self._jwks_url = self._jwks_url_from(get_json(self._discovery_url()))
        return self._keys_from(get_json(self._jwks_url))

    async def _adiscover(self, client: httpx.AsyncClient) -> str:
        self._jwks_url = self._jwks_url_from(await self._aget_json(client, self._discovery_url()))
        return self._jwks_url

    def _discovery_url(self) -> str:
        return self._checked_url(self.issuer.rstrip("/") + DISCOVERY_PATH)

    def _jwks_url_from(self, discovery: Any) -> str:
        if not isinstance(discovery, dict) or discovery.get("issuer") != self.issuer:
            raise KeysUnavailable(
                f"the discovery document of {self.issuer} names another issuer "
                f"({discovery.get('issuer') if isinstance(discovery, dict) else None!r})"
            )
        url = discovery.get("jwks_uri")
        if not isinstance(url, str):
            raise KeysUnavailable("the discovery document has no jwks_uri")
        return self._checked_url(url)

    def _checked_url(self, url: str) -> str:
        parsed = httpx.URL(url)
        if parsed.scheme == "https" or (
            parsed.scheme == "http" and (self.allow_http or _is_loopback(parsed.host))
        ):
            return url
        raise ValueError(f"the identity provider's keys must come over HTTPS, not {url!r}")

    def _get_json(self, client: httpx.Client, url: str) -> Any:
        try:
            response = client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KeysUnavailable(f"{url}: {exc.__class__.__name__}: {exc}") from None
        return self._json_of(url, response)

    async def _aget_json(self, client: httpx.AsyncClient, url: str) -> Any:
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KeysUnavailable(f"{url}: {exc.__class__.__name__}: {exc}") from None
        return self._json_of(url, response)

    @staticmethod
    def _json_of(url: str, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise KeysUnavailable(f"{url} answered {response.status_code}")
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise KeysUnavailable(f"{url} answered a document over {MAX_DOCUMENT_BYTES} bytes")
        try:
            return response.json()
        except ValueError:
            raise KeysUnavailable(f"{url} did not answer JSON") from None

    @staticmethod
    def _keys_from(document: Any) -> list[_VerificationKey]:
        try:
            keys = _parse_jwks(document, published=True)
        except ValueError as exc:
            raise KeysUnavailable(f"unusable key set: {exc}") from None
        if not keys:
            raise KeysUnavailable("the key set has no usable signature key")
        return keys

    def _install(self, keys: list[_VerificationKey]) -> None:
        self._keys = tuple(keys)
        self._fetched_at = self._clock()
        self._generation += 1
        logger.info(
            "fetched the identity provider's key set",
            extra={"jwks_url": self._jwks_url, "kids": sorted(self.key_ids)},
        )

    def _fetch_failed(self, exc: KeysUnavailable, keep_on_failure: bool) -> None:
        logger.warning("fetching the identity provider's key set failed: %s", exc)
        if self._fetched_at is None or not keep_on_failure:
            raise exc


# --------------------------------------------------------------------------- FastAPI dependencies

VerifierGetter = Callable[[Request], JwtVerifier]
_bearer = HTTPBearer(auto_error=False, description="Staff access token (JWT).")


def verifier_from_app(request: Request) -> JwtVerifier:
    """The verifier each app installs at startup as `app.state.jwt_verifier`."""
    verifier = getattr(request.app.state, "jwt_verifier", None)
    if not isinstance(verifier, JwtVerifier):
        # Fail closed (500), never open: a missing verifier is a deployment bug.
        raise RuntimeError("app.state.jwt_verifier is not configured")
    return verifier


def _unauthenticated(reason: str, detail: str) -> Problem:
    AUTH_FAILURES.labels(reason).inc()
    # RFC 6750 §3.1: no error code when the request carried no credentials at all.
    challenge = "Bearer" if reason == "missing" else 'Bearer error="invalid_token"'
    return Problem(401, UNAUTHENTICATED_TITLE, detail, headers={"WWW-Authenticate": challenge})


def staff_dependency(
    verifier_getter: VerifierGetter = verifier_from_app,
) -> Callable[..., Awaitable[Staff]]:
    """A dependency resolving the request's `Authorization: Bearer` token to `Staff` (or 401)."""

    async def authenticated_staff(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Staff:
        if credentials is None:
            raise _unauthenticated("missing", "Send the staff access token as a Bearer token.")
        verifier = verifier_getter(request)
        try:
            staff = await verifier.averify(credentials.credentials)
        except AuthenticationError as exc:
            raise _unauthenticated(exc.reason, exc.detail) from None
        except KeysUnavailable:
            AUTH_FAILURES.labels("keys_unavailable").inc()
            raise Problem(
                503,
                KEYS_UNAVAILABLE_TITLE,
                "The identity provider's keys could not be fetched; try again shortly.",
                headers={"Retry-After": "5"},
            ) from None
        request.state.staff = staff  # for access logs and audit trails
        return staff

    return authenticated_staff


current_staff = staff_dependency()
CurrentStaff = Annotated[Staff, Depends(current_staff)]


def _service_label(request: Request) -> str:
    return str(getattr(request.app.state, "service_name", None) or request.app.title)


def _action_label(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def _forbidden(service: str, action: str, detail: str) -> Problem:
    FORBIDDEN.labels(service, action).inc()
    return Problem(403, FORBIDDEN_TITLE, detail)


def require_roles(
    *roles: Role | str,
    action: str | None = None,
    authenticate: Callable[..., Awaitable[Staff]] = current_staff,
) -> Callable[..., Awaitable[Staff]]:
    """A dependency returning the staff if they hold at least one of `roles`, else 403.

    `admin` is not implied: list it when admins may act. `action` labels the forbidden metric
    (default: method and route template).
    """
    if not roles:
        raise ValueError("require_roles needs at least one role")
    wanted = tuple(Role(r) for r in roles)  # a typo fails at import, not at request time
    names = ", ".join(wanted)

    async def staff_with_role(
        request: Request, staff: Annotated[Staff, Depends(authenticate)]
    ) -> Staff:
        if not staff.has_role(*wanted):
            raise _forbidden(
                _service_label(request),
                action or _action_label(request),
                f"This action needs one of the roles: {names}.",
            )
        return staff

    return staff_with_role


def ensure_same_unit(
    staff: Staff, unit_code: str | None, *, service: str = "unknown", action: str = "unit_scope"
) -> None:
    """403 unless the staff is an admin or belongs to `unit_code`."""
    if staff.is_admin or (staff.unit is not None and staff.unit == unit_code):
        return
    raise _forbidden(service, action, "This record belongs to another unit.")


# --------------------------------------------------------------------------- development issuer


def default_dev_issuer_dir() -> Path:
    configured = os.environ.get("DVC_DEV_ISSUER_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".config" / "dvc-platform" / "dev-issuer"


_ENVIRONMENT_VARIABLE = re.compile(r"DVC_(?:\w+_)?ENVIRONMENT")


def _is_production(environment: str | None = None) -> bool:
    """Production when the caller's settings say so, or when any service's environment setting
    in this process's environment does (`DVC_INTAKE_ENVIRONMENT`, ..., or `DVC_ENVIRONMENT`):
    deployments set the services' own variables, never a global one."""
    if environment == "production":
        return True
    return any(
        value.strip().lower() == "production"
        for name, value in os.environ.items()
        if _ENVIRONMENT_VARIABLE.fullmatch(name)
    )


class DevIssuer:
    """A local Ed25519 token issuer for development and tests; never used in production.

    The key pair is created once in `directory` (private key mode 0600) and reused afterwards,
    so services started later verify tokens minted earlier.
    """

    algorithm = "EdDSA"

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        issuer: str = DEV_ISSUER,
        audience: str = DEV_AUDIENCE,
        environment: str | None = None,
    ) -> None:
        """`environment`: the calling service's `settings.environment`; production refuses."""
        if _is_production(environment):
            raise RuntimeError("the development issuer is disabled in production")
        self.directory = Path(directory) if directory is not None else default_dev_issuer_dir()
        self.issuer = issuer
        self.audience = audience
        self._private_key = self._load_or_create()
        public_raw = self._private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        digest = hashlib.sha256(public_raw).digest()[:12]
        self.kid = "dev-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    @property
    def private_key_path(self) -> Path:
        return self.directory / "private_key.pem"

    @property
    def public_key_path(self) -> Path:
        return self.directory / "public_key.pem"

    def _load_or_create(self) -> ed25519.Ed25519PrivateKey:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.private_key_path.exists():
            self._create_private_key()
        key = serialization.load_pem_private_key(self.private_key_path.read_bytes(), None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"{self.private_key_path} is not an Ed25519 private key")
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if not self.public_key_path.exists() or self.public_key_path.read_bytes() != public_pem:
            tmp = self.directory / f".public_key.{uuid.uuid4().hex}.tmp"
            tmp.write_bytes(public_pem)
            os.replace(tmp, self.public_key_path)
        return key

    def _create_private_key(self) -> None:
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = self.directory / f".private_key.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            # link() never overwrites: if another process won the race, keep its key.
            try:
                os.link(tmp, self.private_key_path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)

    def mint(
        self,
        subject: str,
        roles: Iterable[Role | str],
        unit: str | None,
        name: str | None = None,
        ttl_seconds: int = 3600,
    ) -> str:
        """A signed staff token. Roles are passed through unchecked (tests need odd ones)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "roles": [str(role) for role in roles],
        }
        if unit is not None:
            claims["unit"] = unit
        if name is not None:
            claims["name"] = name
        return jwt.encode(
            claims, self._private_key, algorithm=self.algorithm, headers={"kid": self.kid}
        )

    def verifier(self, audience: Audience | None = None) -> JwtVerifier:
        """A verifier of this issuer's tokens, for `audience` (default: the issuer's own)."""
        return JwtVerifier.from_file(
            self.public_key_path, issuer=self.issuer, audience=audience or self.audience
        )


def verifier_from_settings(
    settings: ServiceSettings, *, dev_issuer_dir: str | os.PathLike[str] | None = None
) -> JwtVerifier:
    """The verifier a service installs on `app.state.jwt_verifier`.

    Uses `jwt_public_key_file` when set; else the provider's published key set when a JWKS URL
    is set (`jwt_jwks_url`) or the issuer is a URL (discovery: Keycloak's realm URL, say);
    otherwise, in development and test only, the local development issuer's public key
    (creating the key pair on first use).
    """
    if settings.jwt_public_key_file:
        return JwtVerifier.from_file(
            settings.jwt_public_key_file,
            issuer=settings.jwt_issuer,
            audience=settings.accepted_audiences,
        )
    jwks_url = settings.jwt_jwks_url
    if jwks_url or settings.jwt_issuer.startswith(("https://", "http://")):
        return JwksVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.accepted_audiences,
            jwks_url=jwks_url or None,
            # Plain HTTP only to a local provider outside production (devstack's Keycloak).
            allow_http=settings.environment != "production",
        )
    if settings.environment == "production":
        raise RuntimeError("production needs the issuer's keys; the dev issuer is not used")
    issuer = DevIssuer(
        dev_issuer_dir,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        environment=settings.environment,
    )
    return issuer.verifier(settings.accepted_audiences)


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m shared.auth mint --sub u1 --role officer --unit G12` prints a dev token."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.auth", description="Development staff tokens."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", help="print a token signed by the development issuer")
    mint.add_argument("--sub", required=True, help="staff subject (user id)")
    mint.add_argument(
        "--role",
        action="append",
        required=True,
        choices=[r.value for r in Role],
        help="repeat for several roles",
    )
    mint.add_argument("--unit", help="unit code, e.g. G12")
    mint.add_argument("--name", help="display name")
    mint.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    mint.add_argument("--dir", help="key directory (default: $DVC_DEV_ISSUER_DIR or ~/.config/...)")
    mint.add_argument("--issuer", help="iss claim (default: DVC_JWT_ISSUER or dvc-dev-issuer)")
    mint.add_argument("--audience", help="aud claim (default: DVC_JWT_AUDIENCE or dvc-platform)")
    args = parser.parse_args(argv)

    if _is_production():
        print("refusing to mint development tokens: a production environment", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    issuer = DevIssuer(
        args.dir,
        issuer=args.issuer or os.environ.get("DVC_JWT_ISSUER") or DEV_ISSUER,
        audience=args.audience or os.environ.get("DVC_JWT_AUDIENCE") or DEV_AUDIENCE,
    )
    print(issuer.mint(args.sub, args.role, args.unit, name=args.name, ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
