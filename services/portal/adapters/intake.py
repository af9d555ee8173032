"""Intake's HTTP API as the portal uses it (httpx): the catalogue, submission, tracking and the
citizen's actions on a dossier (supplement, withdrawal, payment, result, rating).

Only the HTTP contract is relied on (paths, JSON bodies, RFC 9457 problems). Every call forwards
the citizen's address in `X-Forwarded-For`, so that intake's per-client limits apply to the
citizen and not to the portal. Secrets travel in the `X-Tracking-Secret` header, never in a URL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.portal.adapters.urls import path_segment
from services.portal.domain.errors import (
    ActionRefused,
    IntakeUnavailable,
    NotFound,
    SubmissionRefused,
    TooManyRequests,
)
from services.portal.domain.tracking import DossierStatus
from shared.contracts.catalogue import Procedure


class ProcedurePage(BaseModel):
    items: list[Procedure]
    next_cursor: str | None = None


class Unit(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code: str
    name_vi: str


class DocumentReceipt(BaseModel):
    model_config = ConfigDict(extra="ignore")

    document_type: str
    name: str
    file_name: str
    size_bytes: int


class SubmissionReceipt(BaseModel):
    """Intake's answer to a submission (the fields the portal uses)."""

    model_config = ConfigDict(extra="ignore")

    dossier_code: str
    tracking_secret: str
    procedure_code: str
    procedure_name: str
    submitted_at: Any
    documents: list[DocumentReceipt] = Field(default_factory=list)
    fee_vnd: int = 0


@dataclass(frozen=True)
class OutgoingFile:
    """A file to forward: its document code, name, content type and an open file to stream."""

    document_code: str
    file_name: str
    content_type: str
    stream: IO[bytes]


class PaymentStarted(BaseModel):
    """Intake's answer to starting a payment: where the citizen pays, and how much."""

    model_config = ConfigDict(extra="ignore")

    transaction_id: str
    amount_vnd: int
    payment_url: str


@dataclass(frozen=True)
class ResultDownload:
    """The result document as it streams from intake."""

    content_type: str
    content_disposition: str | None
    content_length: str | None
    chunks: AsyncIterator[bytes]


class IntakeClient:
    def __init__(
        self, base_url: str, *, timeout: float, upload_timeout: float, transport: Any = None
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"Accept": "application/json"},
        )
        self._upload_timeout = upload_timeout

    async def close(self) -> None:
        await self._client.aclose()

    async def ready(self) -> bool:
        try:
            response = await self._client.get("/health/live", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    # --- catalogue ----------------------------------------------------------------------------

    async def search(
        self,
        *,
        query: str,
        unit: str | None,
        level: int | None,
        field: str | None,
        cursor: str | None,
        limit: int,
        client: str,
    ) -> ProcedurePage:
        params: dict[str, str | int] = {"limit": limit}
        for name, value in (("q", query), ("unit", unit), ("field", field), ("cursor", cursor)):
            if value:
                params[name] = value
        if level is not None:
            params["level"] = level
        response = await self._get("/api/v1/procedures", client, params=params)
        if response.status_code == 422:  # a filter out of range: no results rather than an error
            return ProcedurePage(items=[])
        _raise_for_status(response)
        return ProcedurePage.model_validate_json(response.content)

    async def procedure(self, code: str, client: str) -> Procedure:
        response = await self._get(f"/api/v1/procedures/{path_segment(code)}", client)
        if response.status_code == 404:
            raise NotFound(code)
        _raise_for_status(response)
        return Procedure.model_validate_json(response.content)

    async def units(self, client: str) -> list[Unit]:
        response = await self._get("/api/v1/units", client)
        _raise_for_status(response)
        return [Unit.model_validate(unit) for unit in response.json()]

    # --- dossiers -----------------------------------------------------------------------------

    async def submit(
        self,
        dossier: dict[str, Any],
        files: Sequence[OutgoingFile],
        *,
        idempotency_key: str,
        client: str,
    ) -> SubmissionReceipt:
        """Submit online; the files are streamed from their open file objects."""
        parts: list[tuple[str, Any]] = [
            ("dossier", (None, json.dumps(dossier, ensure_ascii=False), "application/json"))
        ]
        parts += [(f.document_code, (f.file_name, f.stream, f.content_type)) for f in files]
        headers = {"Idempotency-Key": idempotency_key, "X-Forwarded-For": client}
        try:
            response = await self._client.post(
                "/api/v1/dossiers", files=parts, headers=headers, timeout=self._upload_timeout
            )
        except httpx.HTTPError as error:
            raise IntakeUnavailable(type(error).__name__) from None
        if response.status_code == 429:
            raise TooManyRequests(_retry_after(response))
        if response.status_code >= 500:
            raise IntakeUnavailable(f"intake answered {response.status_code}")
        if response.status_code >= 400:
            raise SubmissionRefused(response.status_code, _problem(response))
        return SubmissionReceipt.model_validate_json(response.content)

    async def status(self, code: str, secret: str, client: str) -> DossierStatus:
        response = await self._get(
            f"/api/v1/dossiers/{path_segment(code)}", client, headers={"X-Tracking-Secret": secret}
        )
        if response.status_code == 404:
            raise NotFound(code)
        _raise_for_status(response)
        return DossierStatus.model_validate_json(response.content)

    async def receipt(self, code: str, secret: str, client: str) -> dict[str, Any]:
        response = await self._get(
            f"/api/v1/dossiers/{path_segment(code)}/receipt",
            client,
            headers={"X-Tracking-Secret": secret},
        )
        if response.status_code == 404:
            raise NotFound(code)
        _raise_for_status(response)
        body: dict[str, Any] = response.json()
        return body

    # --- the citizen's actions on a dossier ----------------------------------------------------

    async def withdraw(self, code: str, secret: str, reason: str | None, client: str) -> None:
        response = await self._post(
            f"/api/v1/dossiers/{path_segment(code)}/withdrawal",
            client,
            secret,
            json={"reason": reason},
        )
        _raise_for_action(response)

    async def supplement(
        self, code: str, secret: str, files: Sequence[OutgoingFile], note: str | None, client: str
    ) -> None:
        """Send the requested documents; the files are streamed from their open file objects."""
        parts: list[tuple[str, Any]] = [
            (f.document_code, (f.file_name, f.stream, f.content_type)) for f in files
        ]
        if note:
            parts.append(("note", (None, note, "text/plain; charset=utf-8")))
        response = await self._post(
            f"/api/v1/dossiers/{path_segment(code)}/supplements",
            client,
            secret,
            files=parts,
            upload=True,
        )
        _raise_for_action(response)

    async def start_payment(self, code: str, secret: str, client: str) -> PaymentStarted:
        response = await self._post(
            f"/api/v1/dossiers/{path_segment(code)}/payments", client, secret
        )
        _raise_for_action(response)
        return PaymentStarted.model_validate_json(response.content)

    async def rate(
        self, code: str, secret: str, score: int, comment: str | None, client: str
    ) -> None:
        response = await self._post(
            f"/api/v1/dossiers/{path_segment(code)}/rating",
            client,
            secret,
            json={"score": score, "comment": comment},
        )
        _raise_for_action(response)

    @asynccontextmanager
    async def result(self, code: str, secret: str, client: str) -> AsyncIterator[ResultDownload]:
        """The result document, streamed from intake while the context is open."""
        request = self._client.build_request(
            "GET",
            f"/api/v1/dossiers/{path_segment(code)}/result",
            headers={"X-Forwarded-For": client, "X-Tracking-Secret": secret},
            timeout=self._upload_timeout,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise IntakeUnavailable(type(error).__name__) from None
        try:
            if response.status_code >= 400:
                await response.aread()
                _raise_for_action(response)
            yield ResultDownload(
                content_type=response.headers.get("content-type", "application/octet-stream"),
                content_disposition=response.headers.get("content-disposition"),
                content_length=response.headers.get("content-length"),
                chunks=response.aiter_bytes(),
            )
        finally:
            await response.aclose()

    async def _post(
        self,
        path: str,
        client: str,
        secret: str,
        *,
        json: Any = None,
        files: Any = None,
        upload: bool = False,
    ) -> httpx.Response:
        headers = {"X-Forwarded-For": client, "X-Tracking-Secret": secret}
        try:
            if files is not None:
                return await self._client.post(
                    path,
                    files=files,
                    headers=headers,
                    timeout=self._upload_timeout if upload else httpx.USE_CLIENT_DEFAULT,
                )
            return await self._client.post(path, json=json or {}, headers=headers)
        except httpx.HTTPError as error:
            raise IntakeUnavailable(type(error).__name__) from None

    async def _get(
        self,
        path: str,
        client: str,
        *,
        params: dict[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return await self._client.get(
                path, params=params, headers={"X-Forwarded-For": client, **(headers or {})}
            )
        except httpx.HTTPError as error:
            raise IntakeUnavailable(type(error).__name__) from None


def _retry_after(response: httpx.Response) -> int | None:
    value = response.headers.get("retry-after", "")
    return int(value) if value.isdigit() else None


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"status": response.status_code}
    return body if isinstance(body, dict) else {"status": response.status_code}


def _raise_for_action(response: httpx.Response) -> None:
    """A citizen's action: 404 (wrong secret, unknown dossier) and 429 as for tracking; 5xx:
    intake unavailable; any other refusal (409 state conflicts, 422 invalid files...) with its
    problem."""
    if response.status_code == 404 and "result" not in response.url.path:
        raise NotFound(response.url.path)
    if response.status_code == 429:
        raise TooManyRequests(_retry_after(response))
    if response.status_code >= 500:
        raise IntakeUnavailable(f"intake answered {response.status_code}")
    if response.status_code >= 400:
        raise ActionRefused(response.status_code, _problem(response))


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code == 429:
        raise TooManyRequests(_retry_after(response))
    if response.status_code >= 400:
        raise IntakeUnavailable(f"intake answered {response.status_code}")
