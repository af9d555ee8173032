"""Reporting's use cases: record what the events tell, answer the quarterly report and the public
year-to-date figures, and compute the business metrics, over the read-model port
(`domain.ports.ReadModelStore`)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.reporting.domain.facts import facts_update
from services.reporting.domain.ports import ReadModelStore
from services.reporting.domain.public_figures import (
    PublicFigures,
    build_public_figures,
    year_to_date_quarters,
)
from services.reporting.domain.quarters import VN, report_quarters
from services.reporting.domain.report import QuarterlyReport, build_report, report_scope
from services.reporting.metrics import Snapshot, snapshot_of
from shared.contracts.catalogue import Procedure
from shared.contracts.events import DossierEvent
from shared.runtime.auth import Staff


class ReportingService:
    def __init__(self, store: ReadModelStore) -> None:
        self.store = store

    async def save_procedure(self, procedure: Procedure) -> None:
        """Keep the catalogue topic's copy of a procedure (its level and unit)."""
        await self.store.save_procedure(procedure)

    async def record(self, event: DossierEvent, event_id: str) -> bool:
        """Add what a dossier event tells to the dossier's facts, once per event id; the counters
        follow. True if the event is new."""
        return await self.store.record(event.dossier_code, event_id, facts_update(event))

    async def quarterly_report(
        self,
        reader: Staff,
        *,
        year: int | None = None,
        quarter: int | None = None,
        start: date | None = None,
        end: date | None = None,
        unit: str | None = None,
    ) -> QuarterlyReport:
        """The report of a quarter (`year`, `quarter`) or of the quarters a date range touches,
        for the ministry or one unit. Raises `InvalidPeriod`, `NotAllowed`."""
        quarters = report_quarters(year, quarter, start, end)
        scope = report_scope(reader.is_admin, reader.unit, unit)
        rows = await self.store.counters_for(quarters)
        procedures = await self.store.all_procedures()
        return build_report(quarters, rows, procedures, scope)

    async def public_figures(
        self, year: int | None = None, now: datetime | None = None
    ) -> PublicFigures:
        """The public year-to-date figures of `year` (default: the current year, Viet Nam time),
        per unit and per procedure; anonymous and aggregate only."""
        now = now or datetime.now(UTC)
        today = now.astimezone(VN).date()
        year = year or today.year
        quarters = year_to_date_quarters(year, today)
        rows = await self.store.counters_for(quarters)
        procedures = await self.store.all_procedures()
        return build_public_figures(year, quarters, rows, procedures, as_of=today, generated_at=now)

    async def business_snapshot(self) -> Snapshot:
        """All-time figures for the business gauges, from the read models."""
        return snapshot_of(await self.store.all_counters(), await self.store.all_procedures())
