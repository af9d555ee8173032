"""Reporting's public figures API as the portal uses it (httpx): anonymous, aggregate only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from services.portal.domain.errors import FiguresUnavailable
from services.portal.domain.figures import PublicFigures


@dataclass(frozen=True)
class OpenData:
    """One download of the figures, as reporting rendered it."""

    content: bytes
    media_type: str


class ReportingClient:
    def __init__(self, base_url: str, *, timeout: float, transport: Any = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=5),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def figures(self, year: int | None) -> PublicFigures:
        response = await self._get("/api/v1/public/figures", year)
        return PublicFigures.model_validate_json(response.content)

    async def open_data(self, year: int, kind: str) -> OpenData:
        """The figures of `year` as `json` or `csv`, byte for byte as reporting serves them."""
        path = "/api/v1/public/figures.csv" if kind == "csv" else "/api/v1/public/figures"
        response = await self._get(path, year)
        return OpenData(response.content, response.headers.get("content-type", ""))

    async def _get(self, path: str, year: int | None) -> httpx.Response:
        params = {"year": year} if year else None
        try:
            response = await self._client.get(path, params=params)
        except httpx.HTTPError as error:
            raise FiguresUnavailable(type(error).__name__) from None
        if response.status_code != 200:
            raise FiguresUnavailable(f"reporting answered {response.status_code}")
        return response
