"""Reporting's read models in memory: the fake of `domain.ports.ReadModelStore` for handler,
service and API tests (no database). It derives and applies counters exactly as the MongoDB store
does (`domain.contributions`), without its concurrency control: one event loop, no crash between
saving the facts and the counters.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from services.reporting.domain.contributions import (
    contributions,
    difference,
    parse_key,
    to_triples,
)
from services.reporting.domain.facts import FactsUpdate, with_fact
from shared.contracts.catalogue import Procedure


class MemoryStore:
    """Implements `domain.ports.ReadModelStore`; rows are returned as copies."""

    def __init__(self) -> None:
        self.dossiers: dict[str, dict[str, Any]] = {}
        self.applied: dict[str, set[str]] = {}
        self.counters: dict[str, dict[str, Any]] = {}
        self.procedures: dict[str, dict[str, Any]] = {}

    async def save_procedure(self, procedure: Procedure) -> None:
        self.procedures[procedure.code] = {
            "_id": procedure.code,
            "name": procedure.name,
            "unit_code": procedure.unit_code,
            "unit_name": procedure.unit_name,
            "level": procedure.level,
            "fee_vnd": procedure.total_fee_vnd,
        }

    async def record(self, dossier_code: str, event_id: str, update: FactsUpdate) -> bool:
        applied = self.applied.setdefault(dossier_code, set())
        if event_id in applied:
            return False
        applied.add(event_id)
        known = self.dossiers.get(dossier_code, {"_id": dossier_code, "counted": []})
        facts = self.dossiers[dossier_code] = with_fact(known, update, copy.deepcopy(update.value))
        wanted = contributions(facts)
        for key, fields in difference(facts["counted"], wanted).items():
            row = self.counters.setdefault(key, {"_id": key, **parse_key(key)})
            for field, n in fields.items():
                row[field] = row.get(field, 0) + n
        facts["counted"] = to_triples(wanted)
        return True

    async def counters_for(self, quarters: Iterable[str]) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(self.counters[key])
            for quarter in quarters
            for key in sorted(self.counters)
            if self.counters[key]["quarter"] == quarter
        ]

    async def all_counters(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(row) for row in self.counters.values()]

    async def all_procedures(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(row) for row in self.procedures.values()]
