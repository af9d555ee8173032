"""Publishes the catalogue on its compacted topic: persist, then publish, then record.

A procedure is stored first; every procedure whose stored content differs from what was last
published is then sent (key = procedure code), and only after the broker acknowledged it is the
publication recorded. A crash in between republishes at the next pass, which a compacted topic
absorbs (same key, same content). Passes run at start-up, after an admin change, and periodically:
the first compares every procedure with what was published and flags the differences; each pass
then reads only the flagged procedures (an indexed `publish_pending` flag).
"""

from __future__ import annotations

import asyncio
import logging

from faststream.kafka import KafkaBroker

from services.intake.adapters.store import IntakeStore
from shared.contracts.cloudevents import wrap
from shared.runtime.kafka import publish_cloud_event

log = logging.getLogger(__name__)


class CataloguePublisher:
    def __init__(self, store: IntakeStore, broker: KafkaBroker, topic: str, source: str) -> None:
        self.store = store
        self.broker = broker
        self.topic = topic
        self.source = source
        self._lock = asyncio.Lock()
        self._compared = False

    async def publish_changes(self) -> int:
        async with self._lock:  # one pass at a time in this process
            if not self._compared:
                await self.store.flag_unpublished()
                self._compared = True
            pending = await self.store.unpublished_procedures()
            await asyncio.gather(
                *(
                    publish_cloud_event(self.broker, self.topic, wrap(procedure, self.source))
                    for procedure, _ in pending
                )
            )
            await self.store.mark_published([(p.code, sha) for p, sha in pending])
            if pending:
                log.info("published %d catalogue records", len(pending))
            return len(pending)
