"""Verifying staff bearer tokens: against keys from a file (`JwtVerifier`) or the identity
provider's published key set (`JwksVerifier`)."""

import asyncio
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import jwt

from shared.runtime.auth.identity import Audience, AuthenticationError, KeysUnavailable, Role, Staff
from shared.runtime.auth.keys import (
    ALLOWED_ALGORITHMS,
    VerificationKey,
    parse_jwks,
    parse_public_keys,
)

LEEWAY_SECONDS = 30
# Far above any real staff token; bounds the work done on garbage input.
MAX_TOKEN_LENGTH = 8192


class JwtVerifier:
    """Verifies staff bearer tokens against an issuer, an audience and a set of public keys."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: Audience,
        keys: Sequence[VerificationKey],
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

    def _candidates(self, alg: str, kid: Any) -> list[VerificationKey]:
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
        self._keys: tuple[VerificationKey, ...] = ()
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

    def _fetch_with(self, get_json: Callable[[str], Any]) -> list[VerificationKey]:
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
    def _keys_from(document: Any) -> list[VerificationKey]:
        try:
            keys = parse_jwks(document, published=True)
        except ValueError as exc:
            raise KeysUnavailable(f"unusable key set: {exc}") from None
        if not keys:
            raise KeysUnavailable("the key set has no usable signature key")
        return keys

    def _install(self, keys: list[VerificationKey]) -> None:
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
