"""Erase the contact details and messages of finished dossiers past retention (Decree 13/2023).

    python -m services.notification.citizens.erasure                  # DVC_NOTIFICATION_* settings
    python -m services.notification.citizens.erasure --older-than-days 730 --dry-run

The notification service's half of intake's `python -m services.intake.erasure`: for each dossier
that finished (3, 8, 10) more than `--older-than-days` ago (default 730), the recipient's name,
phone and e-mail, and the text and address of each of its messages and inbox entries are
blanked (`domain.erasure`); the delivery log (which message, when, channel, outcome) stays.
Idempotent and served by indexes; `--dry-run` lists the dossiers and changes nothing. A dossier
finished before this release has no finish date here: its contacts are kept (see the runbook).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.notification.citizens.adapters.erasure import ContactErasureStore
from services.notification.citizens.adapters.store import NotificationStore
from services.notification.citizens.domain.erasure import DEFAULT_RETENTION_DAYS, retention_cutoff
from services.notification.settings import NotificationSettings
from shared.runtime.mongo import create_mongo_client

BATCH = 200


@dataclass
class ErasureResult:
    cutoff: datetime
    erased: list[str] = field(default_factory=list)
    dry_run: bool = False


async def erase_finished_contacts(
    db: AsyncDatabase[dict[str, Any]],
    older_than_days: int,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    batch: int = BATCH,
) -> ErasureResult:
    now = now or datetime.now(UTC)
    await NotificationStore(db).ensure_indexes()
    store = ContactErasureStore(db)
    result = ErasureResult(retention_cutoff(now, older_than_days), dry_run=dry_run)
    if dry_run:
        result.erased = await store.erasable_before(result.cutoff, limit=10_000_000)
        return result
    while codes := await store.erasable_before(result.cutoff, limit=batch):
        for code in codes:
            if await store.erase(code, now):
                result.erased.append(code)
        if len(codes) < batch:
            break
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--older-than-days",
        type=int,
        default=DEFAULT_RETENTION_DAYS,
        help=f"erase dossiers finished more than this many days ago ({DEFAULT_RETENTION_DAYS})",
    )
    parser.add_argument("--dry-run", action="store_true", help="list only, change nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    settings = NotificationSettings()

    async def run() -> ErasureResult:
        mongo = create_mongo_client(settings.mongo_url, appname="notification-erasure")
        try:
            return await erase_finished_contacts(
                mongo[settings.database_name], args.older_than_days, dry_run=args.dry_run
            )
        finally:
            await mongo.close()

    result = asyncio.run(run())
    verb = "would erase" if result.dry_run else "erased"
    print(
        f"notification: {verb} the contact details and messages of {len(result.erased)} "
        f"dossier(s) finished before {result.cutoff.isoformat(timespec='seconds')}"
    )
    for code in result.erased if result.dry_run else ():
        print(f"  {code}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
