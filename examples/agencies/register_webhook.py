#!/usr/bin/env python3
"""Sample client of the DVC platform's webhook registry, for other agencies. Standard library only
(Python 3.11+). Your API key (`dvcak_...`) comes from the platform's operator.

    export DVC_API_BASE=https://<notification service host>   # handed over with the key
    export DVC_API_KEY=dvcak_...
    python register_webhook.py subscribe --url https://hooks.example.gov.vn/dvc --unit G12
    python register_webhook.py list
    python register_webhook.py deliveries <subscription id> [--status failed]
    python register_webhook.py redrive <subscription id> [--since 2026-01-05T00:00:00+07:00]
    python register_webhook.py replay <subscription id> --since 2026-01-05T00:00:00+07:00 --wait
    python register_webhook.py resume <subscription id>
    python register_webhook.py rotate-secret <subscription id>

Errors are RFC 9457 problem details (`title`, `detail`); this client raises them as `ApiError`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.error import HTTPError
from urllib.parse import quote, urlencode

PREFIX = "/api/v1/webhooks/subscriptions"


class ApiError(RuntimeError):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")


@dataclass
class Registry:
    """The registry API of one agency (its API key)."""

    base_url: str
    api_key: str
    timeout: float = 30.0
    opener: urllib.request.OpenerDirector = field(default_factory=urllib.request.build_opener)

    def call(
        self,
        method: str,
        path: str = "",
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        url = self.base_url.rstrip("/") + PREFIX + path
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except HTTPError as exc:
            raw_problem = exc.read()
            try:
                problem = json.loads(raw_problem)
            except ValueError:
                problem = {"title": exc.reason, "detail": raw_problem.decode(errors="replace")}
            raise ApiError(exc.code, problem) from None
        return json.loads(raw) if raw else None

    # Subscriptions

    def subscribe(
        self,
        url: str,
        *,
        unit_codes: Sequence[str] = (),
        procedure_codes: Sequence[str] = (),
        event_types: Sequence[str] = (),
        description: str | None = None,
    ) -> dict[str, Any]:
        """Register `url` for the public events matching the filters (empty: all). The answer
        holds the signing `secret` (whsec_...), shown only this once: store it."""
        body: dict[str, Any] = {
            "url": url,
            "filters": {
                "unit_codes": list(unit_codes),
                "procedure_codes": list(procedure_codes),
                "event_types": list(event_types),
            },
        }
        if description:
            body["description"] = description
        return self.call("POST", body=body)

    def subscriptions(self) -> list[dict[str, Any]]:
        return self.call("GET")

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.call("GET", _id(subscription_id))

    def set_enabled(self, subscription_id: str, enabled: bool) -> dict[str, Any]:
        return self.call("PATCH", _id(subscription_id), {"enabled": enabled})

    def delete(self, subscription_id: str) -> None:
        self.call("DELETE", _id(subscription_id))

    def rotate_secret(self, subscription_id: str) -> dict[str, Any]:
        """A new secret, in force at once: the old one stops being used."""
        return self.call("POST", _id(subscription_id) + "/rotate-secret")

    def resume(self, subscription_id: str) -> dict[str, Any]:
        """After fixing your receiver: resume a subscription paused by the circuit breaker."""
        return self.call("POST", _id(subscription_id) + "/resume")

    # Deliveries

    def deliveries(
        self,
        subscription_id: str,
        *,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The delivery log, newest first (metadata only): status pending/delivered/failed,
        attempts, last status code and error."""
        query = {"status": status, "since": _iso(since), "limit": limit}
        return self.call("GET", _id(subscription_id) + "/deliveries", query=query)

    def redrive(self, subscription_id: str, since: datetime | None = None) -> int:
        """Attempt the failed deliveries again (a fresh round of retries); returns how many."""
        body = {"since": _iso(since)} if since else None
        return int(self.call("POST", _id(subscription_id) + "/redrive", body)["redriven"])

    def replay(self, subscription_id: str, since: datetime) -> dict[str, Any]:
        """Deliver again every matching event published since `since` (with its original id:
        your deduplication drops the ones you already have). Returns the replay job."""
        return self.call("POST", _id(subscription_id) + "/replay", {"since": _iso(since)})

    def replay_status(self, subscription_id: str, replay_id: str) -> dict[str, Any]:
        return self.call("GET", f"{_id(subscription_id)}/replays/{quote(replay_id, safe='')}")

    def wait_for_replay(
        self, subscription_id: str, replay_id: str, timeout: float = 600, interval: float = 2
    ) -> dict[str, Any]:
        """The replay job once it has enqueued every event (status `done` or `failed`)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.replay_status(subscription_id, replay_id)
            if job["status"] in ("done", "failed") or time.monotonic() > deadline:
                return job
            time.sleep(interval)


def _id(subscription_id: str) -> str:
    return "/" + quote(subscription_id, safe="")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("give the time with its UTC offset, e.g. 2026-01-05T00:00:00+07:00")
    return moment.isoformat()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The DVC webhook registry")
    commands = parser.add_subparsers(dest="command", required=True)
    subscribe = commands.add_parser("subscribe", help="register a URL; prints the secret once")
    subscribe.add_argument("--url", required=True)
    subscribe.add_argument("--unit", action="append", default=[], help="unit code (repeatable)")
    subscribe.add_argument("--procedure", action="append", default=[], help="procedure code")
    subscribe.add_argument("--event", action="append", default=[], help="step, e.g. receive")
    subscribe.add_argument("--description")
    commands.add_parser("list", help="your subscriptions")
    for name in ("show", "resume", "rotate-secret", "disable", "enable", "delete"):
        commands.add_parser(name).add_argument("id")
    log = commands.add_parser("deliveries", help="the delivery log")
    log.add_argument("id")
    log.add_argument("--status", choices=["pending", "delivered", "failed"])
    log.add_argument("--since", type=datetime.fromisoformat)
    log.add_argument("--limit", type=int, default=100)
    redrive = commands.add_parser("redrive", help="attempt the failed deliveries again")
    redrive.add_argument("id")
    redrive.add_argument("--since", type=datetime.fromisoformat)
    replay = commands.add_parser("replay", help="deliver again every event since a moment")
    replay.add_argument("id")
    replay.add_argument("--since", type=datetime.fromisoformat, required=True)
    replay.add_argument("--wait", action="store_true", help="until every event is enqueued")
    args = parser.parse_args(argv)

    base, key = os.environ.get("DVC_API_BASE"), os.environ.get("DVC_API_KEY")
    if not base or not key:
        parser.error("set DVC_API_BASE and DVC_API_KEY")
    registry = Registry(base, key)
    try:
        if args.command == "subscribe":
            result: Any = registry.subscribe(
                args.url,
                unit_codes=args.unit,
                procedure_codes=args.procedure,
                event_types=args.event,
                description=args.description,
            )
        elif args.command == "list":
            result = registry.subscriptions()
        elif args.command == "show":
            result = registry.subscription(args.id)
        elif args.command in ("disable", "enable"):
            result = registry.set_enabled(args.id, args.command == "enable")
        elif args.command == "delete":
            result = registry.delete(args.id)
        elif args.command == "resume":
            result = registry.resume(args.id)
        elif args.command == "rotate-secret":
            result = registry.rotate_secret(args.id)
        elif args.command == "deliveries":
            result = registry.deliveries(
                args.id, status=args.status, since=args.since, limit=args.limit
            )
        elif args.command == "redrive":
            result = {"redriven": registry.redrive(args.id, args.since)}
        else:
            result = registry.replay(args.id, args.since)
            if args.wait:
                result = registry.wait_for_replay(args.id, result["id"])
    except (ApiError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
