"""Rebuild reporting's read models from the start of the topics, then swap them in atomically.

    python -m services.reporting.rebuild      # settings from DVC_REPORTING_* like the service

1. Capture the end offsets of every dossier topic and the catalogue topic, read them from the
   beginning with a throwaway consumer (`adapters.replay`: no group, nothing committed) and apply
   the service's own subscribers (`handlers.handlers_for`) into a fresh set of collections,
   `rebuild_<ts>_*`.
2. Swap: one `update_one` on the pointer document (`read_model_pointer`, `_id: "active"`). The
   running service need not stop: its `ActiveStore` re-reads the pointer at least every
   `POINTER_TTL` seconds, and from then on its consumer writes to, and its API reads from, the
   new set.
3. Catch up: events the service applied to the old set after step 1's end offsets (or before it
   noticed the pointer) are applied to the new set too: after waiting `2 × POINTER_TTL` the
   rebuild reads from step 1's end offsets to fresh end offsets. Handlers are idempotent per event
   id, so what both wrote is counted once.
4. Drop the old set's collections (unless `--keep-old`).

Malformed records are skipped and counted (the service dead-letters them; they add nothing).
A failing handler aborts the rebuild before the swap: the active set is untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.reporting.adapters.replay import TopicReplay
from services.reporting.adapters.store import (
    ReportingStore,
    drop_read_models,
    read_active_prefix,
    swap_active_prefix,
)
from services.reporting.handlers import handlers_for
from services.reporting.service import ReportingService
from services.reporting.settings import ReportingSettings
from shared.runtime.mongo import create_mongo_client

log = logging.getLogger(__name__)

POINTER_TTL = 1.0  # must match ActiveStore's default ttl


@dataclass
class RebuildResult:
    prefix: str
    previous_prefix: str
    events: int
    skipped: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def rebuild(
    settings: ReportingSettings,
    db: AsyncDatabase[dict[str, Any]] | None = None,
    *,
    keep_old: bool = False,
    pointer_ttl: float = POINTER_TTL,
) -> RebuildResult:
    mongo = None
    if db is None:
        mongo = create_mongo_client(settings.mongo_url, appname="reporting-rebuild")
        db = mongo[settings.database_name]
    prefix = f"rebuild_{datetime.now(UTC):%Y%m%d%H%M%S%f}_"
    store = ReportingStore(db, prefix)
    await store.ensure_indexes()
    handlers = handlers_for(ReportingService(store))
    topics = {settings.topic(model.topic): model for model in handlers}
    replay = TopicReplay(settings, topics, handlers, client_id="reporting-rebuild")
    await replay.start()
    try:
        started = time.perf_counter()
        begins = await replay.beginning_offsets()
        ends = await replay.end_offsets()
        await replay.run(begins, ends)
        seconds = time.perf_counter() - started
        replayed = replay.events

        previous = await read_active_prefix(db)
        await swap_active_prefix(db, prefix)
        # Let every ActiveStore see the swap, then apply what the old set got meanwhile.
        await asyncio.sleep(2 * pointer_ttl)
        await replay.run(ends, await replay.end_offsets())
    finally:
        await replay.stop()
    try:
        if not keep_old:
            await drop_read_models(db, previous)
    finally:
        if mongo is not None:
            await mongo.close()
    return RebuildResult(prefix, previous, replayed, replay.skipped, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep-old", action="store_true", help="keep the previous collections")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    result = asyncio.run(rebuild(ReportingSettings(), keep_old=args.keep_old))
    print(
        f"rebuilt into {result.prefix!r} (was {result.previous_prefix!r}): "
        f"{result.events} events in {result.seconds:.2f} s = "
        f"{result.events_per_second:.0f} events/s; {result.skipped} malformed skipped"
    )


if __name__ == "__main__":
    main()
