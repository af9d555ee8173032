#!/usr/bin/env python3
"""Sample consumer of the public dossier-status stream of the Ministry of Science and Technology's
online public-service platform (DVC), for other agencies. Copy this file; it needs only `aiokafka`
(`pip install "aiokafka>=0.12"`) and Python 3.11+.

    export KAFKA_BOOTSTRAP=<external bootstrap host>:9094   # handed over with the credentials
    export KAFKA_USERNAME=agency-<name> KAFKA_PASSWORD=...   # your read-only Kafka user
    export KAFKA_CA_FILE=ca.crt                              # the cluster CA certificate
    export KAFKA_GROUP=<name>-status-reader                  # must start with "<name>-"
    python stream_consumer.py                                # follow the stream
    python stream_consumer.py --from-timestamp 2026-01-05T00:00:00+07:00   # replay, then follow

Locally, against the development broker: `KAFKA_SECURITY_PROTOCOL=PLAINTEXT` and no credentials.

What any Kafka client has to do (Java, Go, .NET, librdkafka or a CloudEvents SDK work the same
way; the topic and its headers are described by the AsyncAPI document the notification service
serves at `GET /asyncapi.yaml`):

- Connect with `security.protocol=SASL_SSL`, `sasl.mechanism=SCRAM-SHA-512`, the cluster CA as
  trust store, and a consumer group named `<name>-...` (the only groups the broker lets you use).
- Each record is a CloudEvent 1.0 in Kafka *binary* mode: the attributes are headers (`ce_id`,
  `ce_source`, `ce_type`, `ce_specversion`, `ce_time`, `ce_subject`, `content-type`), the value is
  the event data as JSON and the key is the dossier code, so one dossier's steps are in order.
- Turn auto-commit off and commit an offset only after the record has been processed: a crash then
  re-reads, never skips. Delivery is therefore *at least once*: deduplicate on `ce_id`.
- Ignore what you do not know: new fields in the data, new values of `state` or `action`, new
  event types on the topic. The platform adds to a `.v1` topic only in these ways; a breaking
  change comes as a new `.v2` topic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

TOPIC = "dvc.public.dossier-status.v1"
EVENT_TYPE = "vn.gov.most.dvc.public.dossier-status.v1"
AGENCY_USER_PREFIX = "agency-"
STANDARD_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject")

# The national portal's dossier states (the platform's DossierState). A state not listed here is
# one added later: keep the number, do not fail.
STATE_LABELS = {
    1: "Mới nộp trực tuyến, chờ tiếp nhận (submitted)",
    2: "Đã tiếp nhận (received)",
    3: "Không tiếp nhận (not received)",
    4: "Đang xử lý (in processing)",
    5: "Yêu cầu bổ sung hồ sơ (supplement requested)",
    6: "Yêu cầu thực hiện nghĩa vụ tài chính (payment requested)",
    7: "Công dân yêu cầu rút hồ sơ (withdrawal requested)",
    8: "Dừng xử lý (stopped)",
    9: "Đã có kết quả (processed)",
    10: "Đã trả kết quả (result returned)",
}
CHANNEL_LABELS = {1: "counter", 2: "online", 3: "post"}

log = logging.getLogger("dvc-stream-consumer")


class ConfigError(ValueError):
    """A setting is missing or wrong; the message says which and why."""


class NotAnEvent(ValueError):
    """A record that is not a readable CloudEvent of the public stream (logged and skipped)."""


# --- Configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    bootstrap: str
    group: str
    security_protocol: str = "SASL_SSL"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # None: the system's trusted CAs
    topic: str = TOPIC
    auto_offset_reset: str = "earliest"  # a new group reads the whole history (kept forever)
    dedupe_window: int = 100_000  # how many recent event ids are remembered

    def __post_init__(self) -> None:
        if self.security_protocol not in ("SASL_SSL", "PLAINTEXT"):
            raise ConfigError("KAFKA_SECURITY_PROTOCOL must be SASL_SSL (or PLAINTEXT locally)")
        if self.security_protocol == "SASL_SSL" and not (self.username and self.password):
            raise ConfigError("SASL_SSL needs KAFKA_USERNAME and KAFKA_PASSWORD")
        prefix = group_prefix(self.username)
        if prefix and not self.group.startswith(prefix):
            raise ConfigError(
                f"KAFKA_GROUP must start with {prefix!r}: the broker lets {self.username} "
                "use only those consumer groups"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        missing = [name for name in ("KAFKA_BOOTSTRAP", "KAFKA_GROUP") if not env.get(name)]
        if missing:
            raise ConfigError(f"set {', '.join(missing)}")
        return cls(
            bootstrap=env["KAFKA_BOOTSTRAP"],
            group=env["KAFKA_GROUP"],
            security_protocol=env.get("KAFKA_SECURITY_PROTOCOL", "SASL_SSL").upper(),
            username=env.get("KAFKA_USERNAME") or None,
            password=env.get("KAFKA_PASSWORD") or None,
            ca_file=env.get("KAFKA_CA_FILE") or None,
            topic=env.get("KAFKA_TOPIC", TOPIC),
            auto_offset_reset=env.get("KAFKA_AUTO_OFFSET_RESET", "earliest"),
        )


def group_prefix(username: str | None) -> str | None:
    """The consumer-group prefix of an agency user `agency-<name>`: `<name>-`."""
    if username and username.startswith(AGENCY_USER_PREFIX):
        return username.removeprefix(AGENCY_USER_PREFIX) + "-"
    return None


def security_options(config: Config) -> dict[str, Any]:
    """The aiokafka connection options: TLS (verifying the broker) with SCRAM-SHA-512."""
    if config.security_protocol == "PLAINTEXT":
        return {"security_protocol": "PLAINTEXT"}
    return {
        "security_protocol": "SASL_SSL",
        "ssl_context": ssl.create_default_context(cafile=config.ca_file),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": config.username,
        "sasl_plain_password": config.password,
    }


# --- Decoding a CloudEvent in Kafka binary mode -------------------------------------------------


@dataclass(frozen=True)
class DossierStatus:
    """One public step of a dossier. `data` keeps every field, those added later included."""

    id: str
    source: str
    type: str
    time: datetime | None
    dossier_code: str
    procedure_code: str
    unit_code: str
    state: int
    action: str
    channel: int | None
    due_at: datetime | None
    occurred_at: datetime
    data: dict[str, Any] = field(repr=False)
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def state_label(self) -> str:
        return STATE_LABELS.get(self.state, f"state {self.state} (new, unknown to this reader)")


def header_map(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    try:
        return {name.lower(): (raw or b"").decode() for name, raw in headers or ()}
    except UnicodeDecodeError as exc:
        raise NotAnEvent(f"a header is not UTF-8: {exc}") from exc


def _time(value: Any, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise NotAnEvent(f"{what} is not an RFC 3339 time: {value!r}") from exc


def decode(
    value: bytes | None, headers: Iterable[tuple[str, bytes | None]] | None
) -> DossierStatus | None:
    """The public step in a record; None for another event type (a later addition: skip it)."""
    attrs = header_map(headers)
    missing = [h for h in ("ce_specversion", "ce_id", "ce_source", "ce_type") if not attrs.get(h)]
    if missing:
        raise NotAnEvent(f"not a CloudEvent: no {', '.join(missing)} header")
    if attrs["ce_specversion"].split(".")[0] != "1":
        raise NotAnEvent(f"CloudEvents version {attrs['ce_specversion']!r} is not 1.x")
    if attrs["ce_type"] != EVENT_TYPE:
        return None
    if attrs.get("content-type", "application/json").split(";")[0].strip() != "application/json":
        raise NotAnEvent(f"unexpected content type {attrs['content-type']!r}")
    try:
        data = json.loads(value or b"")
    except ValueError as exc:
        raise NotAnEvent(f"the data is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise NotAnEvent("the data is not a JSON object")
    occurred_at = _time(data.get("occurred_at"), "occurred_at")
    if occurred_at is None:
        raise NotAnEvent("the data has no occurred_at")
    try:
        channel = data.get("channel")
        return DossierStatus(
            id=attrs["ce_id"],
            source=attrs["ce_source"],
            type=attrs["ce_type"],
            time=_time(attrs.get("ce_time"), "ce_time"),
            dossier_code=str(data["dossier_code"]),
            procedure_code=str(data["procedure_code"]),
            unit_code=str(data["unit_code"]),
            state=int(data["state"]),
            action=str(data["action"]),
            channel=int(channel) if channel is not None else None,
            due_at=_time(data.get("due_at"), "due_at"),
            occurred_at=occurred_at,
            data=data,
            extensions={
                name[3:]: text
                for name, text in attrs.items()
                if name.startswith("ce_") and name[3:] not in STANDARD_ATTRIBUTES
            },
        )
    except KeyError as exc:
        raise NotAnEvent(f"the data has no {exc}") from exc
    except (ValueError, TypeError) as exc:
        if isinstance(exc, NotAnEvent):
            raise
        raise NotAnEvent(f"unreadable data: {exc}") from exc


# --- Deduplication ------------------------------------------------------------------------------


class RecentIds:
    """The ids of the last `capacity` events, to drop a repeated delivery.

    Why: delivery is at least once. A record processed but not yet committed when the consumer
    crashed or lost its partitions in a rebalance is read again, and a producer retry can write
    the same event twice. Each event keeps its `ce_id` through all of that. This in-memory window
    catches repeats within one run; to be exact across restarts, store `ce_id` with the effect in
    your own database (a unique index) in the same write.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


# --- Consuming ----------------------------------------------------------------------------------

Handler = Callable[[DossierStatus], Awaitable[None]]


class _RewindOnFirstAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    """Replay: move each newly assigned partition to the first record published at or after
    `since` (Kafka's record timestamps), once; later rebalances keep the committed offsets."""

    def __init__(self, consumer: AIOKafkaConsumer, since: datetime | None) -> None:
        self.consumer = consumer
        self.since = since
        self.rewound: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        todo = [tp for tp in assigned if tp not in self.rewound]
        if self.since is None or not todo:
            return
        millis = int(self.since.timestamp() * 1000)
        found = await self.consumer.offsets_for_times({tp: millis for tp in todo})
        ends = await self.consumer.end_offsets(todo)
        for tp in todo:
            at = found.get(tp)
            self.consumer.seek(tp, at.offset if at is not None else ends[tp])
            self.rewound.add(tp)


async def consume(
    config: Config,
    handle: Handler,
    *,
    stop_after: int | None = None,
    from_timestamp: datetime | None = None,
    poll_ms: int = 1000,
) -> int:
    """Read the stream and call `handle` once per new event, in order per dossier; commit after
    processing. Returns after `stop_after` events (never, if None); an exception from `handle`
    stops it too, with the offsets of the events before it committed.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.bootstrap,
        group_id=config.group,
        client_id=config.group,
        enable_auto_commit=False,
        auto_offset_reset=config.auto_offset_reset,
        **security_options(config),
    )
    consumer.subscribe([config.topic], listener=_RewindOnFirstAssignment(consumer, from_timestamp))
    seen = RecentIds(config.dedupe_window)
    handled = 0
    await consumer.start()
    try:
        while stop_after is None or handled < stop_after:
            batch = await consumer.getmany(timeout_ms=poll_ms, max_records=500)
            done: dict[TopicPartition, int] = {}  # next offset to read, per partition
            try:
                for tp, records in batch.items():
                    for record in records:
                        if stop_after is not None and handled >= stop_after:
                            break
                        try:
                            event = decode(record.value, record.headers)
                        except NotAnEvent as exc:
                            # Never block the stream on one bad record; keep it aside instead.
                            log.warning("skipped %s@%s: %s", tp, record.offset, exc)
                            event = None
                        if event is not None and seen.first_time(event.id):
                            await handle(event)
                            handled += 1
                        done[tp] = record.offset + 1
            finally:
                if done:
                    await consumer.commit(done)
    finally:
        await consumer.stop()
    return handled


# --- Command line -------------------------------------------------------------------------------


def describe(event: DossierStatus) -> str:
    """One line per event."""
    channel = ""
    if event.channel is not None:
        channel = f" channel={CHANNEL_LABELS.get(event.channel, event.channel)}"
    due = f" due={event.due_at.isoformat()}" if event.due_at else ""
    return (
        f"{event.occurred_at.isoformat()} {event.dossier_code} unit={event.unit_code} "
        f"procedure={event.procedure_code} action={event.action} "
        f"state={event.state} {event.state_label}{channel}{due}"
    )


async def print_event(event: DossierStatus) -> None:
    print(describe(event), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--from-timestamp",
        type=datetime.fromisoformat,
        help="replay from this moment (ISO 8601 with offset), then follow",
    )
    parser.add_argument("--max-events", type=int, help="stop after this many events")
    args = parser.parse_args(argv)
    if args.from_timestamp is not None and args.from_timestamp.tzinfo is None:
        parser.error("--from-timestamp needs a UTC offset, e.g. 2026-01-05T00:00:00+07:00")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(config, args.max_events, args.from_timestamp))
    except KeyboardInterrupt:
        pass  # the offsets of what was printed are committed
    return 0


async def _run(config: Config, max_events: int | None, since: datetime | None) -> None:
    """Until done, Ctrl-C or SIGTERM (as a container is stopped): then commit and leave."""
    task = asyncio.create_task(
        consume(config, print_event, stop_after=max_events, from_timestamp=since)
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise


if __name__ == "__main__":
    raise SystemExit(main())
