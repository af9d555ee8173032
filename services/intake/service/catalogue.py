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


class ProcedureChanged(Exception):
    """The procedure is no longer at the version the change was made from (another
    administrator saved meanwhile), or a new one exists already: nothing was stored."""

    def __init__(self, current: str | None) -> None:
        super().__init__(current)
        self.current = current  # the version now stored (None: there is none)


class VersionRequired(Exception):
    """A change of an existing procedure that does not say which version it was made from."""

    def __init__(self, current: str) -> None:
        super().__init__(current)
        self.current = current


ANY_VERSION = "*"


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

    async def procedure_version(self, code: str) -> tuple[Procedure, str]:
        """The procedure and its version (the admin API's `ETag`)."""
        found = await self.store.procedure_version(code)
        if found is None:
            raise ProcedureNotFound(f"No procedure {code!r}.")
        return found

    async def rollup(self, large_volume: int) -> CatalogueRollup:
        return rollup(await self.store.all_procedures(), large_volume_threshold=large_volume)

    async def save(self, procedure: Procedure, if_match: Sequence[str] | None) -> str:
        """Create or change a procedure, then publish the change (deferred to the periodic pass
        if the broker is unavailable); answers the new version.

        `if_match`: the versions the change was made from (the request's `If-Match`; `*`: any
        existing version). A change of an existing procedure must give one, and is stored only
        if the procedure is still at it: two administrators editing the same procedure never
        overwrite each other silently. None creates a procedure that does not exist yet."""
        found = await self.store.procedure_version(procedure.code)
        current = found[1] if found else None
        if if_match is None:
            if current is not None:
                raise VersionRequired(current)
            expected = None
        elif ANY_VERSION in if_match and current is not None:
            expected = current
        elif current is not None and current in if_match:
            expected = current
        else:
            raise ProcedureChanged(current)
        version = await self.store.replace_procedure(procedure, expected)
        if version is None:  # another change was stored between the read and the write
            found = await self.store.procedure_version(procedure.code)
            raise ProcedureChanged(found[1] if found else None)
        try:
            await self.publisher.publish_changes()
        except Exception:  # stored: the periodic pass publishes it once the broker is back
            log.warning("catalogue change stored, publication deferred")
        return version
