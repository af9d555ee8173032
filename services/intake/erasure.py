"""Erase the personal data of finished dossiers past their retention period (Decree 13/2023).

    python -m services.intake.erasure                        # settings from DVC_INTAKE_*
    python -m services.intake.erasure --older-than-days 730 --dry-run
    python -m services.intake.erasure --mark-finished        # once, after upgrading

A dossier is finished when it was not received (3), stopped (8: refused or withdrawn) or its
result returned (10); past `--older-than-days` (default: the setting
`personal_data_retention_days`) after its finish date, the applicant's name, ID or tax code and
contact details, the form, the attached files, the inbox messages and the rating's comment are
erased (`domain.erasure`); the code, procedure, unit, dates, states, history and fee stay, for
the Ministry's accounts and reports. Idempotent: an erased dossier is never read again; served
by the index (`erasable`, `finished_at`). `--dry-run` lists what would be erased and changes
nothing. `--mark-finished` gives dossiers finished before this command existed their finish
date (a one-off pass over every dossier). Run it daily (a CronJob); see docs/runbook.md.
The notification service holds contact details too:
`python -m services.notification.citizens.erasure`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.intake.adapters.erasure import DossierErasureStore
from services.intake.domain.erasure import retention_cutoff
from services.intake.settings import IntakeSettings
from shared.runtime.mongo import create_mongo_client

log = logging.getLogger(__name__)

BATCH = 200


@dataclass
class ErasureResult:
    cutoff: datetime
    erased: list[str] = field(default_factory=list)
    marked: int = 0
    dry_run: bool = False


async def erase_finished_dossiers(
    db: AsyncDatabase[dict[str, Any]],
    older_than_days: int,
    *,
    dry_run: bool = False,
    mark_finished: bool = False,
    now: datetime | None = None,
    batch: int = BATCH,
) -> ErasureResult:
    """Erase (or with `dry_run` only list) the finished dossiers past retention."""
    now = now or datetime.now(UTC)
    store = DossierErasureStore(db)
    await store.store.ensure_indexes()
    result = ErasureResult(retention_cutoff(now, older_than_days), dry_run=dry_run)
    if mark_finished and not dry_run:
        result.marked = len([code async for code in store.mark_finished()])
    if dry_run:
        found = await store.erasable_before(result.cutoff, limit=10_000_000)
        result.erased = [d["_id"] for d in found]
        return result
    while dossiers := await store.erasable_before(result.cutoff, limit=batch):
        for dossier in dossiers:
            if await store.erase(dossier, now):
                result.erased.append(dossier["_id"])
        if len(dossiers) < batch:
            break
    return result


def main(argv: list[str] | None = None) -> int:
    settings = IntakeSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--older-than-days",
        type=int,
        default=settings.personal_data_retention_days,
        help="erase dossiers finished more than this many days ago "
        f"(default: {settings.personal_data_retention_days})",
    )
    parser.add_argument("--dry-run", action="store_true", help="list only, change nothing")
    parser.add_argument(
        "--mark-finished",
        action="store_true",
        help="first date the dossiers finished before this command existed (reads them all)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    async def run() -> ErasureResult:
        mongo = create_mongo_client(settings.mongo_url, appname="intake-erasure")
        try:
            return await erase_finished_dossiers(
                mongo[settings.database_name],
                args.older_than_days,
                dry_run=args.dry_run,
                mark_finished=args.mark_finished,
            )
        finally:
            await mongo.close()

    result = asyncio.run(run())
    verb = "would erase" if result.dry_run else "erased"
    print(
        f"intake: {verb} the personal data of {len(result.erased)} dossier(s) finished before "
        f"{result.cutoff.isoformat(timespec='seconds')}"
        + (f"; {result.marked} finished dossier(s) dated" if result.marked else "")
    )
    for code in result.erased if result.dry_run else ():
        print(f"  {code}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
