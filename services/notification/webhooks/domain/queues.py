"""The in-memory order of one subscription's deliveries: one queue per dossier (pure, no I/O).

Deliveries of one dossier go out one at a time, in order; different dossiers go out in
parallel, so a dossier whose delivery waits for a retry holds back only its own later steps.
A dossier is *ready* when its first delivery may be attempted; workers take ready dossiers,
attempt the head delivery, then report `done` (the next one, if any, becomes ready) or leave the
dossier busy while the head waits for its retry time, until `release`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime


@dataclass
class QueuedDelivery:
    id: str
    dossier_code: str
    event_id: str
    body: bytes
    partition: int
    seq: int
    attempts: int = 0
    not_before: datetime | None = None  # a retry time restored from the database


class DossierQueues:
    def __init__(self) -> None:
        self._queues: dict[str, deque[QueuedDelivery]] = {}
        self._ready: deque[str] = deque()
        self._busy: set[str] = set()  # dossiers taken by a worker or held for a retry
        self._known: set[str] = set()  # delivery ids held (to skip duplicates on reload)

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, delivery_id: str) -> bool:
        return delivery_id in self._known

    def add(self, delivery: QueuedDelivery) -> bool:
        """Queue a delivery behind the earlier ones of its dossier; False if already held."""
        if delivery.id in self._known:
            return False
        self._known.add(delivery.id)
        queue = self._queues.setdefault(delivery.dossier_code, deque())
        queue.append(delivery)
        if len(queue) == 1 and delivery.dossier_code not in self._busy:
            self._ready.append(delivery.dossier_code)
        return True

    def take(self) -> QueuedDelivery | None:
        """The head delivery of the next ready dossier (the dossier is busy until done/hold)."""
        while self._ready:
            dossier = self._ready.popleft()
            queue = self._queues.get(dossier)
            if queue and dossier not in self._busy:
                self._busy.add(dossier)
                return queue[0]
        return None

    def done(self, delivery: QueuedDelivery) -> None:
        """The head delivery is finished (delivered or failed for good)."""
        self._known.discard(delivery.id)
        self._busy.discard(delivery.dossier_code)
        queue = self._queues.get(delivery.dossier_code)
        if queue and queue[0].id == delivery.id:
            queue.popleft()
        if queue:
            self._ready.append(delivery.dossier_code)
        elif queue is not None:
            del self._queues[delivery.dossier_code]

    def release(self, dossier_code: str) -> None:
        """A held dossier may be attempted again."""
        self._busy.discard(dossier_code)
        if self._queues.get(dossier_code):
            self._ready.append(dossier_code)

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget the deliveries of partitions this replica no longer owns; returns how many."""
        dropped = 0
        for dossier, queue in list(self._queues.items()):
            if queue and queue[0].partition in partitions:
                for delivery in queue:
                    self._known.discard(delivery.id)
                dropped += len(queue)
                del self._queues[dossier]
                self._busy.discard(dossier)
        return dropped

    def pending_ids(self) -> set[str]:
        return set(self._known)
