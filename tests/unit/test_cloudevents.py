from datetime import UTC, datetime

import pytest

from shared.contracts.cloudevents import CloudEvent, MalformedEvent, unwrap, wrap
from shared.contracts.events import DossierPaid, DossierSubmitted
from tests.factories import submitted


def test_round_trip_keeps_the_event_and_its_attributes() -> None:
    event = submitted()
    cloud_event = wrap(event, source="/dvc/intake")

    record = cloud_event.to_kafka()
    decoded = CloudEvent.from_kafka(record.value, record.headers)

    assert decoded == cloud_event
    assert unwrap(decoded) == event
    assert record.key == event.dossier_code.encode()


def test_binary_mode_headers_carry_every_required_attribute() -> None:
    record = wrap(submitted(), source="/dvc/intake").to_kafka()
    headers = {name: value.decode() for name, value in record.headers}

    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "vn.gov.most.dvc.dossier.submitted.v1"
    assert headers["ce_source"] == "/dvc/intake"
    assert headers["ce_subject"] == "000.00.21.G12-261129-0001"
    assert headers["content-type"] == "application/json"
    assert datetime.fromisoformat(headers["ce_time"]) == datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
    # UUIDv7: the version nibble is 7, so ids sort by time.
    assert headers["ce_id"][14] == "7"


def test_event_ids_are_unique() -> None:
    ids = {wrap(submitted(), source="/t").id for _ in range(1000)}
    assert len(ids) == 1000


@pytest.mark.parametrize("missing", ["ce_specversion", "ce_id", "ce_source", "ce_type"])
def test_a_record_without_a_required_attribute_is_malformed(missing: str) -> None:
    record = wrap(submitted(), source="/t").to_kafka()
    headers = [(k, v) for k, v in record.headers if k != missing]
    with pytest.raises(MalformedEvent, match=missing):
        CloudEvent.from_kafka(record.value, headers)


def test_a_body_that_is_not_the_declared_event_is_malformed() -> None:
    record = wrap(submitted(), source="/t").to_kafka()
    with pytest.raises(MalformedEvent, match="invalid"):
        unwrap(CloudEvent.from_kafka(b'{"dossier_code": "nope"}', record.headers))
    with pytest.raises(MalformedEvent):
        unwrap(CloudEvent.from_kafka(b"\xff\xfe not json", record.headers))


def test_an_unexpected_event_type_is_malformed() -> None:
    cloud_event = wrap(submitted(), source="/t")
    with pytest.raises(MalformedEvent, match="unexpected event type"):
        unwrap(cloud_event, expected=[DossierPaid])
    assert isinstance(unwrap(cloud_event, expected=[DossierSubmitted]), DossierSubmitted)


def test_subject_must_match_the_dossier_in_the_data() -> None:
    record = wrap(submitted(), source="/t").to_kafka()
    headers = [
        (k, b"000.00.21.G12-261129-9999" if k == "ce_subject" else v) for k, v in record.headers
    ]
    with pytest.raises(MalformedEvent, match="ce_subject"):
        unwrap(CloudEvent.from_kafka(record.value, headers))


def test_unknown_fields_from_a_newer_producer_are_ignored() -> None:
    """Within a version changes are additive: an old consumer reads a newer event."""
    event = submitted()
    data = event.model_dump(mode="json") | {"added_in_a_later_release": True}
    cloud_event = CloudEvent(
        id="1",
        type=event.event_type,
        source="/t",
        subject=event.dossier_code,
        time=event.occurred_at,
        data=__import__("json").dumps(data).encode(),
    )
    assert unwrap(cloud_event) == event
