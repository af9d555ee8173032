"""Operators' command for the national-portal sync (reads the `DVC_NOTIFICATION_*` settings).

    python -m services.notification.portal status
    python -m services.notification.portal resync --dossier 000.00.21.G12-261129-0001 [...]
    python -m services.notification.portal resync --failed

`resync` rebuilds each dossier's messages from the stored facts and sends them now (the dossier,
then every step); the portal upserts, so resyncing a synced dossier changes nothing there. It may
run beside the service: a dossier the service's worker holds at that moment is reported `busy`;
one it resets is claimed by that same write, so the service's worker cannot take it meanwhile.
Exit status 0 when every named dossier ended `synced`, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from services.notification.main import build_portal_sync
from services.notification.portal.domain.sync_status import SYNCED
from services.notification.portal.settings import PortalCommandSettings
from shared.runtime.mongo import create_mongo_client


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.notification.portal")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="dossiers per sync status and the synchronised share")
    resync = commands.add_parser("resync", help="send dossiers to the portal again")
    which = resync.add_mutually_exclusive_group(required=True)
    which.add_argument("--dossier", action="append", metavar="CODE", help="a dossier code")
    which.add_argument("--failed", action="store_true", help="every dossier whose sync failed")
    return parser


async def run(argv: list[str], settings: PortalCommandSettings | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = settings or PortalCommandSettings()
    mongo = create_mongo_client(settings.mongo_url, appname="notification-portal-cli")
    sync = build_portal_sync(mongo[settings.database_name], settings)
    try:
        if args.command == "status":
            counts = await sync.counts()
            total = sum(counts.values())
            share = counts[SYNCED] / total if total else 1.0
            print(json.dumps({"dossiers": counts, "total": total, "synced_share": share}))
            return 0
        if args.failed:
            outcomes = await sync.resync_failed()
        else:
            outcomes = await sync.resync(args.dossier)
        for code, outcome in outcomes.items():
            line = f"{code}\t{outcome}"
            if outcome != SYNCED and (state := await sync.sync_state(code)):
                line += f"\t{state.get('last_error') or ''}"
            print(line)
        print(f"{len(outcomes)} dossier(s) resynchronised", file=sys.stderr)
        return 0 if all(o == SYNCED for o in outcomes.values()) else 1
    finally:
        await sync.close()
        await mongo.close()


def main() -> None:
    sys.exit(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
