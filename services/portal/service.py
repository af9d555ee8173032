"""The portal's use cases: browse the catalogue, apply online, show the receipt, track a dossier
and act on it (supplement, withdraw, pay, download the result, rate), and show the public figures.

Intake (and reporting, for the figures) are the single source of truth; the portal caches only
public data (catalogue search pages, procedures, units, fields; the public figures) for a short
while (`DVC_PORTAL_CATALOGUE_CACHE_SECONDS`, `_FIGURES_CACHE_SECONDS`), never anything about a
dossier.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from services.portal.adapters.intake import (
    IntakeClient,
    OutgoingFile,
    PaymentStarted,
    ProcedurePage,
    ResultDownload,
    SubmissionReceipt,
    Unit,
)
from services.portal.adapters.reporting import OpenData, ReportingClient
from services.portal.domain.application import Application
from services.portal.domain.errors import SubmissionRefused
from services.portal.domain.figures import PublicFigures
from services.portal.domain.pagination import PAGE_SIZE, PageWindow
from services.portal.domain.tracking import DossierStatus
from shared.contracts.catalogue import Procedure

T = TypeVar("T")

# A double click sends the same form twice: the second finds the first still in progress
# (409) and waits for it, then gets the same receipt.
IN_PROGRESS_RETRIES = 20
IN_PROGRESS_WAIT_SECONDS = 0.5


class TtlCache(Generic[T]):
    """A small time-bounded, size-bounded cache of public data; one load per key at a time."""

    def __init__(self, ttl_seconds: float, max_entries: int = 512) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        if self.ttl <= 0:
            return await load()
        if (entry := self._fresh(key)) is not None:
            return entry
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if (entry := self._fresh(key)) is not None:
                return entry
            value = await load()
            self._entries[key] = (time.monotonic() + self.ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        self._locks.pop(key, None)
        return value

    def _fresh(self, key: str) -> T | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None


@dataclass(frozen=True)
class CatalogueFilters:
    query: str = ""
    unit: str | None = None
    level: int | None = None
    field: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.query or self.unit or self.level or self.field)


@dataclass(frozen=True)
class CataloguePage:
    procedures: list[Procedure]
    window: PageWindow
    next_cursor: str | None


class PortalService:
    def __init__(
        self,
        intake: IntakeClient,
        reporting: ReportingClient,
        *,
        cache_seconds: float,
        figures_cache_seconds: float = 60.0,
    ) -> None:
        self.intake = intake
        self.reporting = reporting
        self._figures: TtlCache[PublicFigures] = TtlCache(figures_cache_seconds, max_entries=16)
        self._open_data: TtlCache[OpenData] = TtlCache(figures_cache_seconds, max_entries=32)
        self._procedures: TtlCache[Procedure] = TtlCache(cache_seconds)
        self._units: TtlCache[list[Unit]] = TtlCache(max(cache_seconds, 300))
        self._fields: TtlCache[list[str]] = TtlCache(max(cache_seconds, 300))
        self._searches: TtlCache[ProcedurePage] = TtlCache(cache_seconds, max_entries=1024)

    # --- catalogue ----------------------------------------------------------------------------

    async def units(self, client: str) -> list[Unit]:
        units = await self._units.get("units", lambda: self.intake.units(client))
        return sorted(units, key=lambda unit: unit.name_vi)

    async def fields(self, client: str) -> list[str]:
        """Every field of the catalogue (intake has no list of them: read from the procedures)."""

        async def load() -> list[str]:
            fields: set[str] = set()
            cursor: str | None = None
            for _ in range(100):  # at most 10,000 procedures
                page = await self.intake.search(
                    query="",
                    unit=None,
                    level=None,
                    field=None,
                    cursor=cursor,
                    limit=100,
                    client=client,
                )
                fields.update(p.field for p in page.items)
                if not (cursor := page.next_cursor):
                    break
            return sorted(fields)

        return await self._fields.get("fields", load)

    async def search(
        self, filters: CatalogueFilters, *, page: int, cursor: str | None, client: str
    ) -> CataloguePage:
        key = repr((filters.query.casefold(), filters.unit, filters.level, filters.field, cursor))
        result = await self._searches.get(
            key,
            lambda: self.intake.search(
                query=filters.query,
                unit=filters.unit,
                level=filters.level,
                field=filters.field,
                cursor=cursor,
                limit=PAGE_SIZE,
                client=client,
            ),
        )
        window = PageWindow(
            page=page if cursor else 1,
            size=PAGE_SIZE,
            shown=len(result.items),
            has_next=result.next_cursor is not None,
        )
        return CataloguePage(result.items, window, result.next_cursor)

    async def procedure(self, code: str, client: str) -> Procedure:
        return await self._procedures.get(code, lambda: self.intake.procedure(code, client))

    # --- applying online ----------------------------------------------------------------------

    async def submit(
        self,
        procedure: Procedure,
        application: Application,
        files: Sequence[OutgoingFile],
        *,
        idempotency_key: str,
        client: str,
    ) -> SubmissionReceipt:
        """Submit the dossier; a form sent twice (double click, back and resubmit) carries the
        same key, so intake answers it with the first receipt and never makes two dossiers."""
        dossier = application.to_intake(procedure.code)
        for _ in range(IN_PROGRESS_RETRIES):
            for upload in files:
                upload.stream.seek(0)
            try:
                return await self.intake.submit(
                    dossier, files, idempotency_key=idempotency_key, client=client
                )
            except SubmissionRefused as refused:
                if refused.status != 409:
                    raise
                await asyncio.sleep(IN_PROGRESS_WAIT_SECONDS)
        raise SubmissionRefused(409, {"title": "in progress", "status": 409})

    # --- tracking -----------------------------------------------------------------------------

    async def status(self, code: str, secret: str, client: str) -> DossierStatus:
        return await self.intake.status(code, secret, client)

    async def receipt(self, code: str, secret: str, client: str) -> dict[str, Any]:
        return await self.intake.receipt(code, secret, client)

    # --- acting on a dossier ------------------------------------------------------------------

    async def supplement(
        self,
        code: str,
        secret: str,
        files: Sequence[OutgoingFile],
        note: str | None,
        client: str,
    ) -> None:
        await self.intake.supplement(code, secret, files, note, client)

    async def withdraw(self, code: str, secret: str, reason: str | None, client: str) -> None:
        await self.intake.withdraw(code, secret, reason, client)

    async def start_payment(self, code: str, secret: str, client: str) -> PaymentStarted:
        return await self.intake.start_payment(code, secret, client)

    def result(
        self, code: str, secret: str, client: str
    ) -> AbstractAsyncContextManager[ResultDownload]:
        return self.intake.result(code, secret, client)

    async def rate(
        self, code: str, secret: str, score: int, comment: str | None, client: str
    ) -> None:
        await self.intake.rate(code, secret, score, comment, client)

    # --- public figures -----------------------------------------------------------------------

    async def figures(self, year: int | None) -> PublicFigures:
        return await self._figures.get(str(year), lambda: self.reporting.figures(year))

    async def open_data(self, year: int, kind: str) -> OpenData:
        return await self._open_data.get(
            f"{year}.{kind}", lambda: self.reporting.open_data(year, kind)
        )
