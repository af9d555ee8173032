"""Signing staff in at the OpenID Connect provider with Authlib: the authorisation code flow with
PKCE (S256) and a nonce, the code exchanged with the client's secret (a confidential client), the
ID token checked against the provider's published keys; refreshing the access token; and the
provider's end-session URL for logout (RP-initiated, with `id_token_hint`).

Authlib's Starlette client keeps the flow's state in `request.session`: the routes point that at
the server-side session's `flow` dict (`services.portal.workspace.sessions`), so no state, nonce
or code verifier travels in a cookie.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import RedirectResponse

from services.portal.workspace.sessions import StaffProfile, StaffSession, Tokens

# Authlib 1.9 prefers `httpx2` and warns, at import, that it falls back to `httpx`, which the
# platform uses (and Authlib still supports): the warning is not this service's to act on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.base_client import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )
    from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]

PROVIDER = "staff"


class SignInFailed(Exception):
    """The provider refused or the answer did not check out (state, code, ID token)."""


class ProviderUnavailable(Exception):
    """The provider did not answer (discovery, token endpoint)."""


class StaffSignIn:
    def __init__(
        self,
        *,
        issuer_url: str,
        client_id: str,
        client_secret: str,
        timeout: float,
        transport: Any = None,
    ) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._client_kwargs: dict[str, Any] = {
            "scope": "openid",
            "code_challenge_method": "S256",
            "timeout": timeout,
        }
        if transport is not None:
            self._client_kwargs["transport"] = transport
        self._oauth = OAuth()
        self._oauth.register(
            PROVIDER,
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=f"{self.issuer_url}/.well-known/openid-configuration",
            client_kwargs=self._client_kwargs,
        )

    @property
    def _app(self) -> Any:
        return self._oauth.create_client(PROVIDER)

    async def start(
        self, request: Request, session: StaffSession, redirect_uri: str
    ) -> RedirectResponse:
        """The redirect to the provider's login page (state, nonce and PKCE verifier kept in
        the server-side session)."""
        request.scope["session"] = session.flow
        try:
            response: RedirectResponse = await self._app.authorize_redirect(request, redirect_uri)
        except httpx.HTTPError as error:
            raise ProviderUnavailable(type(error).__name__) from None
        return response

    async def finish(self, request: Request, session: StaffSession) -> tuple[Tokens, StaffProfile]:
        """The callback: the state checked against the session's, the code exchanged (with the
        PKCE verifier), the ID token verified (signature, issuer, audience, nonce)."""
        request.scope["session"] = session.flow
        try:
            token: dict[str, Any] = await self._app.authorize_access_token(request)
        except OAuthError as error:
            raise SignInFailed(error.error or "oauth_error") from None
        except httpx.HTTPError as error:
            raise ProviderUnavailable(type(error).__name__) from None
        except (KeyError, TypeError, ValueError) as error:  # no state data: a stale callback
            raise SignInFailed(type(error).__name__) from None
        finally:
            session.flow.clear()
        claims = token.get("userinfo")
        if not claims:
            raise SignInFailed("no ID token")
        return Tokens.from_response(token, time.time()), StaffProfile.from_claims(dict(claims))

    async def refresh(self, tokens: Tokens) -> Tokens:
        """New tokens from the refresh token; `SignInFailed` when the provider's session ended."""
        if not tokens.refresh_token:
            raise SignInFailed("no refresh token")
        metadata = await self._metadata()
        client = AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_post",
            **self._client_kwargs,
        )
        try:
            async with client:
                token = await client.refresh_token(
                    metadata["token_endpoint"], refresh_token=tokens.refresh_token
                )
        except OAuthError as error:
            raise SignInFailed(error.error or "refresh refused") from None
        except httpx.HTTPError as error:
            raise ProviderUnavailable(type(error).__name__) from None
        refreshed = Tokens.from_response(dict(token), time.time())
        # A provider may keep the refresh token (and does not always return an ID token).
        refreshed.refresh_token = refreshed.refresh_token or tokens.refresh_token
        refreshed.id_token = refreshed.id_token or tokens.id_token
        return refreshed

    async def logout_url(self, id_token: str | None, post_logout_redirect_uri: str) -> str:
        """The provider's end-session URL, which ends its session and sends the browser back."""
        try:
            answer = await self._app.create_logout_url(
                post_logout_redirect_uri=post_logout_redirect_uri,
                id_token_hint=id_token,
                client_id=self.client_id,
            )
        except httpx.HTTPError as error:
            raise ProviderUnavailable(type(error).__name__) from None
        url: str = answer["url"]
        return url

    async def _metadata(self) -> dict[str, Any]:
        try:
            metadata: dict[str, Any] = await self._app.load_server_metadata()
        except httpx.HTTPError as error:
            raise ProviderUnavailable(type(error).__name__) from None
        return metadata
