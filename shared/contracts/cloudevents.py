"""CloudEvents 1.0 over Kafka, binary content mode.

The event attributes travel as `ce_*` headers and the body is the event's data as JSON, so any
CloudEvents SDK can read our topics. The record key is the dossier code: every event of one
dossier lands on one partition, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import ValidationError
from uuid6 import uuid7

from shared.contracts.catalogue import Procedure
from shared.contracts.events import EVENT_MODELS_BY_TYPE, DossierEvent

SPEC_VERSION = "1.0"
JSON = "application/json"
REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type")

Contract = DossierEvent | Procedure
E = TypeVar("E", bound=Contract)
CONTRACTS_BY_TYPE: dict[str, type[Contract]] = {
    **EVENT_MODELS_BY_TYPE,
    Procedure.event_type: Procedure,
}


class MalformedEvent(ValueError):
    """A record that is not a valid CloudEvent of a known type: it can never be processed."""


@dataclass(frozen=True)
class KafkaRecord:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class CloudEvent:
    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: bytes
    datacontenttype: str = JSON
    extensions: dict[str, str] = field(default_factory=dict)

    def to_kafka(self) -> KafkaRecord:
        headers = [
            ("ce_specversion", SPEC_VERSION),
            ("ce_id", self.id),
            ("ce_source", self.source),
            ("ce_type", self.type),
            ("ce_time", self.time.isoformat()),
            ("ce_subject", self.subject),
            ("content-type", self.datacontenttype),
            *((f"ce_{name}", value) for name, value in self.extensions.items()),
        ]
        return KafkaRecord(
            key=self.subject.encode(),
            value=self.data,
            headers=[(name, value.encode()) for name, value in headers],
        )

    @classmethod
    def from_kafka(
        cls, value: bytes | None, headers: Iterable[tuple[str, bytes]] | None
    ) -> CloudEvent:
        attrs: dict[str, str] = {}
        try:
            for name, raw in headers or ():
                attrs[name.lower()] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as exc:
            raise MalformedEvent(f"header is not UTF-8: {exc}") from exc
        missing = [h for h in REQUIRED_HEADERS if not attrs.get(h)]
        if missing:
            raise MalformedEvent(f"missing CloudEvents headers: {', '.join(missing)}")
        if attrs["ce_specversion"] != SPEC_VERSION:
            raise MalformedEvent(f"unsupported specversion {attrs['ce_specversion']!r}")
        try:
            time = datetime.fromisoformat(attrs["ce_time"]) if "ce_time" in attrs else _now()
        except ValueError as exc:
            raise MalformedEvent(f"ce_time is not RFC 3339: {attrs['ce_time']!r}") from exc
        known = {*REQUIRED_HEADERS, "ce_time", "ce_subject", "content-type"}
        return cls(
            id=attrs["ce_id"],
            type=attrs["ce_type"],
            source=attrs["ce_source"],
            subject=attrs.get("ce_subject", ""),
            time=time,
            data=value or b"",
            datacontenttype=attrs.get("content-type", JSON),
            extensions={
                k[3:]: v for k, v in attrs.items() if k.startswith("ce_") and k not in known
            },
        )


def _now() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    """A time-ordered UUIDv7, unique per event; consumers deduplicate on it."""
    return str(uuid7())


def wrap(
    event: DossierEvent | Procedure,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    """The CloudEvent announcing a contract model (a fresh id unless one is given).

    The subject, and so the Kafka key, is the dossier code, or the procedure code for the catalogue.
    """
    if isinstance(event, Procedure):
        subject, occurred_at = event.code, time or _now()
    else:
        subject, occurred_at = event.dossier_code, time or event.occurred_at
    return CloudEvent(
        id=event_id or new_event_id(),
        type=event.event_type,
        source=source,
        subject=subject,
        time=occurred_at,
        data=event.model_dump_json().encode(),
    )


def unwrap(cloud_event: CloudEvent, expected: Sequence[type[E]] | None = None) -> Contract:
    """The validated contract model (dossier event or procedure) inside a CloudEvent, or
    `MalformedEvent`."""
    model = CONTRACTS_BY_TYPE.get(cloud_event.type)
    if model is None or (expected is not None and model not in expected):
        raise MalformedEvent(f"unexpected event type {cloud_event.type!r}")
    if cloud_event.datacontenttype.split(";")[0].strip() != JSON:
        raise MalformedEvent(f"unsupported content type {cloud_event.datacontenttype!r}")
    try:
        event = model.model_validate_json(cloud_event.data)
    except ValidationError as exc:
        raise MalformedEvent(f"invalid {cloud_event.type} data: {exc}") from exc
    subject = event.code if isinstance(event, Procedure) else event.dossier_code
    if cloud_event.subject and cloud_event.subject != subject:
        raise MalformedEvent("ce_subject does not match the code in the data")
    return event
