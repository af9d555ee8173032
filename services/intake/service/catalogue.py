"""The procedure catalogue: seeding the shipped data, search, the level roll-up, and admins'
changes (stored, then published on the catalogue topic)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.intake.adapters.catalogue_publisher import CataloguePublisher
from services.intake.adapters.shipped_catalogue import load_catalogue
from services.intake.adapters.store import Document, IntakeStore
from services.intake.domain.catalogue import CatalogueRollup, query_terms, rollup
from services.intake.domain.errors import ProcedureNotFound
from shared.contracts.catalogue import Procedure

log = logging.getLogger(__name__)


class Catalogue:
    def __init__(self, store: IntakeStore, publisher: CataloguePublisher) -> None:
        self.store = store
        self.publisher = publisher

    async def seed(self) -> None:
        """Store the shipped catalogue (idempotent: unchanged procedures publish nothing)."""
        units, procedures = load_catalogue()
        await self.store.save_units(units)
        changed = await self.store.save_procedures(procedures)
        log.info("catalogue seeded: %d procedures, %d changed", len(procedures), changed)

    async def search(
        self,
        query: str,
        *,
        unit_code: str | None,
        level: int | None,
        field: str | None,
        after: str | None,
        limit: int,
    ) -> tuple[Sequence[Procedure], str | None]:
        """A page of procedures matching every word of `query` (accents optional), and the cursor
        of the next page."""
        items = await self.store.search_procedures(
            terms=query_terms(query),
            unit_code=unit_code,
            level=level,
            field=field,
            after=after,
            limit=limit + 1,
        )
        next_cursor = items[limit - 1].code if len(items) > limit else None
        return items[:limit], next_cursor

    async def procedure(self, code: str) -> Procedure:
        procedure = await self.store.get_procedure(code)
        if procedure is None:
            raise ProcedureNotFound(f"No procedure {code!r}.")
        return procedure

    async def units(self) -> list[Document]:
        return [
            {k: v for k, v in unit.items() if k != "_id"} for unit in await self.store.list_units()
        ]

    async def rollup(self, large_volume: int) -> CatalogueRollup:
        return rollup(await self.store.all_procedures(), large_volume_threshold=large_volume)

    async def save(self, procedure: Procedure) -> None:
        """Create or change a procedure, then publish the change (deferred to the periodic pass
        if the broker is unavailable)."""
        await self.store.save_procedures([procedure])
        try:
            await self.publisher.publish_changes()
        except Exception:  # stored: the periodic pass publishes it once the broker is back
            log.warning("catalogue change stored, publication deferred")
