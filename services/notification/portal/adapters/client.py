"""The HTTP client of the National Public Service Portal's sync API (aiohttp).

Protocol (the one `devstack/simulators/portal.py` implements; the real portal's paths are
[check], kept here):

- `POST /api/auth/login` `{"username", "password"}` → `{"session_token", "expires_in"}` (seconds);
- `POST /api/dossiers` (a `DossierMessage`) and `POST /api/dossiers/progress` (a `StepMessage`),
  both with `Authorization: Bearer <session token>`; 2xx means accepted (upserted).

A session is reused until shortly before it expires; a 401 on a sync call (the portal dropped the
session) logs in again once and repeats the call. Failures raise `PortalError`, `retryable` for
connection errors, time-outs, 5xx, 401 (refused login), 408 and 429; permanent for the other 4xx
(the portal refused the payload; its error list is in the message).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from services.notification.portal.domain.messages import DossierMessage, StepMessage
from shared.runtime.http_client import CALL_FAILURES, LazySession

LOGIN_PATH = "/api/auth/login"
DOSSIER_PATH = "/api/dossiers"
STEP_PATH = "/api/dossiers/progress"
# 401 too: a refused login or session is usually a credential rotation in progress; bounded
# retries end it in `failed` anyway, and `resync --failed` resends once it is fixed.
_RETRYABLE_STATUS = frozenset({401, 408, 425, 429})


class PortalError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class PortalClient:
    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        password: str,
        timeout: float = 10.0,
        session_margin: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = LazySession(timeout=timeout)
        self._username = username
        self._password = password
        self._margin = session_margin
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._login_lock = asyncio.Lock()
        self.logins = 0  # for operators' logs and tests

    async def send_dossier(self, message: DossierMessage) -> None:
        await self._send(DOSSIER_PATH, message.payload())

    async def send_step(self, message: StepMessage) -> None:
        await self._send(STEP_PATH, message.payload())

    async def close(self) -> None:
        await self._http.close()

    async def _send(self, path: str, payload: dict[str, Any]) -> None:
        token = await self._session()
        status, body = await self._post(path, payload, token)
        if status == 401:
            # The portal dropped the session (restart, revocation): one fresh login, once.
            token = await self._session(stale=token)
            status, body = await self._post(path, payload, token)
        _raise_for(status, body, path)

    async def _post(
        self, path: str, payload: dict[str, Any], token: str | None = None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            async with self._http().post(
                self._base_url + path, json=payload, headers=headers
            ) as response:
                return response.status, await response.read()
        except CALL_FAILURES as exc:
            what = f"{'login' if token is None else path}: {type(exc).__name__} {exc}"
            raise PortalError(what.strip(), retryable=True) from exc

    async def _session(self, stale: str | None = None) -> str:
        """A valid session token: the cached one, or a new login when it is missing, about to
        expire, or known `stale` (one login for concurrent callers)."""
        async with self._login_lock:
            fresh = self._token is not None and self._token != stale
            if fresh and self._clock() < self._expires_at - self._margin:
                return self._token  # type: ignore[return-value]
            self._token = None
            status, body = await self._post(
                LOGIN_PATH, {"username": self._username, "password": self._password}
            )
            _raise_for(status, body, "login")
            try:
                answer = json.loads(body)
                token, lifetime = str(answer["session_token"]), float(answer["expires_in"])
            except (ValueError, KeyError, TypeError) as exc:
                raise PortalError("login: unreadable answer", retryable=True) from exc
            self._token, self._expires_at = token, self._clock() + lifetime
            self.logins += 1
            return token


def _raise_for(status: int, body: bytes, what: str) -> None:
    if status < 400:
        return
    detail = _errors(body)
    message = f"{what}: HTTP {status}" + (f" {detail}" if detail else "")
    retryable = status >= 500 or status in _RETRYABLE_STATUS
    raise PortalError(message, retryable=retryable, status=status)


def _errors(body: bytes) -> str:
    text = body.decode(errors="replace")
    try:
        answer = json.loads(text)
    except ValueError:
        return text[:300]
    if isinstance(answer, dict) and "errors" in answer:
        return "; ".join(str(e) for e in answer["errors"])[:1000]
    return str(answer)[:300]
