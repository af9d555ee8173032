"""Processing's officer API as the workspace uses it (httpx), always with the signed-in officer's
own access token: processing's role and unit checks are the only authorisation.

Only the HTTP contract is relied on (paths, JSON bodies, RFC 9457 problems); the answers are read
as plain dictionaries by `views.py`, so a field processing adds never breaks a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from services.portal.adapters.urls import path_segment


class ProcessingRefused(Exception):
    """Processing answered a problem: `status` and its RFC 9457 body."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("title") or f"processing answered {status}")
        self.status = status
        self.problem = problem

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or "")


class NotSignedIn(ProcessingRefused):
    """401: the token was refused (expired, revoked, signed by an unknown key)."""


class Forbidden(ProcessingRefused):
    """403: the officer's role or unit does not allow it."""


class CaseNotFound(ProcessingRefused):
    """404: no such case."""


class Conflict(ProcessingRefused):
    """409: the lifecycle does not allow the action now, or the case changed meanwhile."""


class ProcessingUnavailable(Exception):
    """Processing did not answer, timed out or failed (5xx)."""


_BY_STATUS: dict[int, type[ProcessingRefused]] = {
    401: NotSignedIn,
    403: Forbidden,
    404: CaseNotFound,
    409: Conflict,
}


class ProcessingClient:
    def __init__(self, base_url: str, *, timeout: float, transport: Any = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"Accept": "application/json"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def worklist(
        self,
        access_token: str,
        *,
        states: Sequence[int] = (),
        procedure: str | None = None,
        channel: int | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """One page of the unit's worklist, in processing's order (online first, then by due
        date): `{"items": [...], "next_cursor": ...}`."""
        params: list[tuple[str, str | int]] = [("limit", limit)]
        params += [("state", state) for state in states]
        if procedure:
            params.append(("procedure", procedure))
        if channel is not None:
            params.append(("channel", channel))
        if cursor:
            params.append(("cursor", cursor))
        return await self._call("GET", "/api/v1/cases", access_token, params=params)

    async def counts(
        self, access_token: str, *, procedure: str | None = None, channel: int | None = None
    ) -> dict[str, Any]:
        """The unit's active cases per state: `{"total": n, "states": [{"state", "count"}]}`."""
        params: list[tuple[str, str | int]] = []
        if procedure:
            params.append(("procedure", procedure))
        if channel is not None:
            params.append(("channel", channel))
        return await self._call("GET", "/api/v1/case-counts", access_token, params=params)

    async def case(self, access_token: str, code: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/cases/{path_segment(code)}", access_token)

    async def unit_officers(self, access_token: str, unit: str) -> list[dict[str, Any]]:
        """The officers of `unit` processing knows (they have called it), for the assignment
        form: `[{"subject", "name", "username", "unit", "last_seen"}, ...]`, by name. Unit heads
        may ask for their own unit only, administrators for any (403 otherwise)."""
        response = await staff_request(
            self._client, "GET", "/api/v1/staff", access_token, params={"unit": unit}
        )
        body = response.json()
        if not isinstance(body, list):
            return []
        return [entry for entry in body if isinstance(entry, dict)]

    async def act(
        self,
        access_token: str,
        code: str,
        action_path: str,
        body: dict[str, Any],
        *,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """A workflow action (`receive`, `start-processing`, ...): the case as it now is."""
        return await self._call(
            "POST",
            f"/api/v1/cases/{path_segment(code)}/{path_segment(action_path)}",
            access_token,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )

    async def issue_result(
        self,
        access_token: str,
        code: str,
        *,
        file_name: str,
        content_type: str,
        data: bytes,
        note: str | None,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Issue the result with its document (4 -> 9, after the unit head's approval)."""
        return await self._call(
            "POST",
            f"/api/v1/cases/{path_segment(code)}/result",
            access_token,
            data={"note": note} if note else None,
            files={"file": (file_name, data, content_type)},
            headers={"Idempotency-Key": idempotency_key},
        )

    async def _call(
        self,
        method: str,
        path: str,
        access_token: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await staff_request(
            self._client,
            method,
            path,
            access_token,
            params=params,
            json=json,
            data=data,
            files=files,
            headers=headers,
        )
        body: dict[str, Any] = response.json()
        return body


async def staff_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    access_token: str,
    *,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> httpx.Response:
    """One call of a service's API with the staff member's own token (the service decides what
    they may do). A refusal raises the workspace's exception for its status; a 5xx or no answer
    raises `ProcessingUnavailable`."""
    try:
        response = await client.request(
            method,
            url,
            headers={"Authorization": f"Bearer {access_token}", **(headers or {})},
            **options,
        )
    except httpx.HTTPError as error:
        raise ProcessingUnavailable(type(error).__name__) from None
    if response.status_code >= 500:
        raise ProcessingUnavailable(f"{url} answered {response.status_code}")
    if response.status_code >= 400:
        refusal = _BY_STATUS.get(response.status_code, ProcessingRefused)
        raise refusal(response.status_code, _problem(response))
    return response


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"status": response.status_code}
    return body if isinstance(body, dict) else {"status": response.status_code}
