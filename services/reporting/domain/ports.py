"""The port of reporting's read models, implemented by `adapters.store` (MongoDB) and
`adapters.memory` (in memory, for tests); `tests/integration/reporting/test_store_contract.py`
runs one suite against each.

Rows are plain mappings: a counter row holds its key's fields (`quarter`, `unit`, `procedure`,
`channel`, `level`, see `contributions.parse_key`) and the counts of the fields it has (missing
fields count 0); a procedure row holds `_id` (the code), `name`, `unit_code`, `unit_name`,
`level` and `fee_vnd`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from services.reporting.domain.facts import FactsUpdate
from shared.contracts.catalogue import Procedure


class ReadModelStore(Protocol):
    async def save_procedure(self, procedure: Procedure) -> None:
        """Keep the catalogue copy of one procedure (the last one saved wins)."""
        ...

    async def record(self, dossier_code: str, event_id: str, update: FactsUpdate) -> bool:
        """Add one event's facts to its dossier once, then bring the counters in line with the
        dossier's facts. True if the event is new; a redelivery changes nothing."""
        ...

    async def counters_for(self, quarters: Iterable[str]) -> list[dict[str, Any]]:
        """The counter rows of the given quarters, quarter by quarter, each sorted by key."""
        ...

    async def all_counters(self) -> list[dict[str, Any]]:
        """Every counter row (any order)."""
        ...

    async def all_procedures(self) -> list[dict[str, Any]]:
        """The catalogue copy (any order)."""
        ...
