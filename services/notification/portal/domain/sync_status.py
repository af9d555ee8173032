"""Where the portal stands with one dossier (pure): the sync statuses."""

from __future__ import annotations

PENDING = "pending"  # something to send (or being sent, under a lease)
WAITING = "waiting"  # steps known but not the submission yet: nothing can be sent
SYNCED = "synced"  # the portal holds the dossier as it stands
FAILED = "failed"  # gave up (bounded retries, or refused): kept for `resync`
STATUSES = (PENDING, WAITING, SYNCED, FAILED)
