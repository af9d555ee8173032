"""Operator commands for the webhook registry.

    python -m services.notification.webhooks create-agency --id so-khcn-hn --name "Sở KH&CN Hà Nội"
    python -m services.notification.webhooks revoke-keys --id so-khcn-hn [--keep-newest]
    python -m services.notification.webhooks list

`create-agency` prints a new API key once (only its hash is stored); run it again to give an
agency a second key (e.g. for a rotation), then `revoke-keys --keep-newest` revokes the old ones.
`revoke-keys` alone revokes every key: the agency is cut off, its subscriptions disabled and
their pending deliveries failed (the running services stop them within
`DVC_NOTIFICATION_WEBHOOK_REFRESH_SECONDS`).
"""

from __future__ import annotations

import argparse
import asyncio
import re

from services.notification.settings import NotificationSettings
from services.notification.webhooks.adapters.store import WebhookStore, valid_keys
from shared.runtime.mongo import create_mongo_client

AGENCY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


async def main(args: argparse.Namespace) -> int:
    settings = NotificationSettings()
    client = create_mongo_client(settings.mongo_url, appname="webhooks-cli")
    store = WebhookStore(client[settings.database_name])
    try:
        if args.command == "create-agency":
            key = await store.create_agency(args.id, args.name)
            print(f"agency {args.id}: API key (shown once, store it safely):\n{key}")
        elif args.command == "revoke-keys":
            revoked = await store.revoke_keys(args.id, keep_newest=args.keep_newest)
            print(f"revoked {revoked} key(s) of {args.id}")
            if not await store.api_keys.find_one(valid_keys(args.id)):
                print(f"{args.id} has no valid key left: its webhook deliveries are stopped")
        else:
            for agency in await store.agencies.find().sort("_id").to_list():
                subscriptions = await store.subscriptions_of(agency["_id"])
                print(f"{agency['_id']}\t{agency['name']}\t{len(subscriptions)} subscription(s)")
    finally:
        await client.close()
    return 0


def agency_id(value: str) -> str:
    if not AGENCY_ID.match(value):
        raise argparse.ArgumentTypeError("lowercase letters, digits and '-' (2-63 characters)")
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.notification.webhooks")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-agency", help="create an agency, print a new API key")
    create.add_argument("--id", type=agency_id, required=True)
    create.add_argument("--name", required=True)
    revoke = commands.add_parser("revoke-keys", help="revoke every API key of an agency")
    revoke.add_argument("--id", type=agency_id, required=True)
    revoke.add_argument(
        "--keep-newest", action="store_true", help="keep the newest key (after a rotation)"
    )
    commands.add_parser("list", help="list the agencies")
    raise SystemExit(asyncio.run(main(parser.parse_args())))
