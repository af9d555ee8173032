"""Intake's and reporting's staff APIs as the workspace uses them (httpx), with the signed-in
officer's own access token: the services' role and unit checks stay the only authorisation.

Refusals are the same exceptions as processing's (`processing.py`): 401 `NotSignedIn`, 403
`Forbidden`, 404 `CaseNotFound`, 409 `Conflict`, other 4xx `ProcessingRefused`; no answer or a
5xx is `ProcessingUnavailable`. So every workspace page handles them alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from services.portal.adapters.urls import path_segment
from services.portal.workspace.processing import staff_request


@dataclass(frozen=True)
class Download:
    """A file to pass on to the browser: its bytes and the headers that describe it."""

    data: bytes
    content_type: str
    content_disposition: str | None


@dataclass(frozen=True)
class UploadPart:
    """A file part of a multipart request: the form field, file name, type and bytes."""

    field: str
    file_name: str
    content_type: str
    data: bytes


class StaffApis:
    """Intake (the dossier as submitted, its documents, the counter desk) and reporting (the
    unit's quarterly report), each call with the officer's token."""

    def __init__(
        self,
        *,
        intake_base_url: str,
        reporting_base_url: str,
        timeout: float,
        upload_timeout: float,
        transport: Any = None,
    ) -> None:
        self.intake_base_url = intake_base_url.rstrip("/")
        self.reporting_base_url = reporting_base_url.rstrip("/")
        self.upload_timeout = upload_timeout
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
        )

    async def close(self) -> None:
        await self._client.aclose()

    # --- intake ------------------------------------------------------------------------------

    async def dossier(self, access_token: str, code: str) -> dict[str, Any]:
        """The dossier as submitted: applicant, contact, form data, documents."""
        response = await self._send(
            "GET",
            f"{self.intake_base_url}/api/v1/staff/dossiers/{path_segment(code)}",
            access_token,
        )
        body: dict[str, Any] = response.json()
        return body

    async def document(self, access_token: str, code: str, storage_id: str) -> Download:
        response = await self._send(
            "GET",
            f"{self.intake_base_url}/api/v1/staff/dossiers/{path_segment(code)}"
            f"/documents/{path_segment(storage_id)}",
            access_token,
        )
        return _download(response)

    async def record_at_counter(
        self,
        access_token: str,
        dossier_json: str,
        files: list[UploadPart],
        *,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Record a counter or postal dossier (intake's `POST /api/v1/counter/dossiers`): the
        receipt's data (`dossier_code`, `tracking_secret`, ...)."""
        response = await self._send(
            "POST",
            f"{self.intake_base_url}/api/v1/counter/dossiers",
            access_token,
            data={"dossier": dossier_json},
            files=[(f.field, (f.file_name, f.data, f.content_type)) for f in files],
            headers={"Idempotency-Key": idempotency_key},
            upload=True,
        )
        body: dict[str, Any] = response.json()
        return body

    # --- reporting ---------------------------------------------------------------------------

    async def quarterly_report(self, access_token: str, year: int, quarter: int) -> dict[str, Any]:
        """The unit head's unit's quarterly report (reporting scopes it by the token's unit)."""
        response = await self._send(
            "GET",
            f"{self.reporting_base_url}/api/v1/reports/quarterly",
            access_token,
            params={"year": year, "quarter": quarter},
        )
        body: dict[str, Any] = response.json()
        return body

    async def quarterly_csv(self, access_token: str, year: int, quarter: int) -> Download:
        response = await self._send(
            "GET",
            f"{self.reporting_base_url}/api/v1/reports/quarterly.csv",
            access_token,
            params={"year": year, "quarter": quarter},
        )
        return _download(response)

    async def send_json(
        self, method: str, url: str, access_token: str, *, body: Any = None, params: Any = None
    ) -> Any:
        """Any JSON call of a service's API (the administrator's pages), with the staff's token;
        refusals are the workspace's exceptions, as for the other calls."""
        response = await self._send(method, url, access_token, json=body, params=params)
        return response.json()

    async def send_versioned(
        self,
        method: str,
        url: str,
        access_token: str,
        *,
        body: Any = None,
        if_match: str | None = None,
    ) -> tuple[Any, str | None]:
        """A JSON call on a resource with a version: its answer and its `ETag`; `if_match`: the
        version a change was made from (the service refuses it with 412 if another was saved)."""
        response = await self._send(
            method,
            url,
            access_token,
            json=body,
            headers={"If-Match": if_match} if if_match else None,
        )
        return response.json(), response.headers.get("etag")

    async def _send(
        self,
        method: str,
        url: str,
        access_token: str,
        *,
        params: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        upload: bool = False,
    ) -> httpx.Response:
        return await staff_request(
            self._client,
            method,
            url,
            access_token,
            params=params,
            data=data,
            files=files,
            json=json,
            headers=headers,
            timeout=self.upload_timeout if upload else httpx.USE_CLIENT_DEFAULT,
        )


def _download(response: httpx.Response) -> Download:
    return Download(
        data=response.content,
        content_type=response.headers.get("content-type", "application/octet-stream"),
        content_disposition=response.headers.get("content-disposition"),
    )
