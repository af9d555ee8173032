"""The agencies' sample code (examples/agencies) agrees with the platform's own code: the
receiver's verify() with the webhook signer, the stream consumer's parser with the CloudEvents
the producers write; and it tolerates what a later, additive version of the contract may send."""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.agencies import stream_consumer, webhook_receiver
from examples.agencies.stream_consumer import Config, ConfigError, NotAnEvent, decode
from examples.agencies.webhook_receiver import InvalidSignature, verify
from services.notification.webhooks.domain.signing import new_secret, sign, signature_headers
from services.notification.webhooks.domain.subscriptions import webhook_body
from shared.contracts.cloudevents import wrap
from shared.contracts.events import Channel, DossierState, PublicDossierStatus

# The Standard Webhooks specification's reference vector.
REF_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REF_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REF_TS = 1614265330
REF_BODY = b'{"test": 2432232314}'
REF_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def ref_headers(signature: str = REF_SIGNATURE) -> dict[str, str]:
    return {"webhook-id": REF_ID, "webhook-timestamp": str(REF_TS), "webhook-signature": signature}


def test_the_reference_vector_is_what_the_platform_signs_and_what_the_sample_accepts() -> None:
    assert sign(REF_SECRET, REF_ID, REF_TS, REF_BODY) == REF_SIGNATURE
    assert verify(REF_SECRET, ref_headers(), REF_BODY, now=REF_TS) == REF_ID
    # Header names are case-insensitive, as HTTP servers hand them over in any case.
    upper = {name.title(): value for name, value in ref_headers().items()}
    assert verify(REF_SECRET, upper, REF_BODY, now=REF_TS + 10) == REF_ID


@given(
    msg_id=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s),
    timestamp=st.integers(min_value=1_500_000_000, max_value=2_500_000_000),
    body=st.binary(max_size=300),
)
def test_whatever_the_platform_signs_verifies_and_any_change_does_not(
    msg_id: str, timestamp: int, body: bytes
) -> None:
    secret = new_secret()
    headers = signature_headers(secret, msg_id, timestamp, body)
    assert verify(secret, headers, body, now=timestamp) == msg_id
    with pytest.raises(InvalidSignature):
        verify(secret, headers, body + b"x", now=timestamp)
    with pytest.raises(InvalidSignature):
        verify(new_secret(), headers, body, now=timestamp)
    with pytest.raises(InvalidSignature):
        verify(secret, {**headers, "webhook-id": msg_id + "x"}, body, now=timestamp)


def test_a_request_outside_five_minutes_is_refused() -> None:
    assert verify(REF_SECRET, ref_headers(), REF_BODY, now=REF_TS + 300) == REF_ID
    assert verify(REF_SECRET, ref_headers(), REF_BODY, now=REF_TS - 300) == REF_ID
    for now in (REF_TS + 301, REF_TS - 301):
        with pytest.raises(InvalidSignature, match="tolerance"):
            verify(REF_SECRET, ref_headers(), REF_BODY, now=now)


def test_several_signatures_and_several_secrets_during_a_rotation() -> None:
    other = "v1," + sign(new_secret(), REF_ID, REF_TS, REF_BODY).split(",")[1]
    assert verify(REF_SECRET, ref_headers(f"{other} {REF_SIGNATURE}"), REF_BODY, now=REF_TS)
    assert verify([new_secret(), REF_SECRET], ref_headers(), REF_BODY, now=REF_TS)
    with pytest.raises(InvalidSignature):  # an unknown scheme is not accepted as v1
        verify(REF_SECRET, ref_headers(REF_SIGNATURE.replace("v1,", "v1a,")), REF_BODY, now=REF_TS)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_refused(missing: str) -> None:
    headers = ref_headers()
    del headers[missing]
    with pytest.raises(InvalidSignature):
        verify(REF_SECRET, headers, REF_BODY, now=REF_TS)


def test_the_receiver_answers_401_to_a_forgery_and_accepts_a_delivery_once() -> None:
    receiver = webhook_receiver.WebhookReceiver(REF_SECRET, lambda event: None)
    try:
        now = int(datetime.now(UTC).timestamp())
        body = b'{"id":"e1","data":{}}'
        headers = {
            "webhook-id": "e1",
            "webhook-timestamp": str(now),
            "webhook-signature": sign(REF_SECRET, "e1", now, body),
        }
        assert receiver.accept(headers, body)[0] == 202
        assert receiver.accept(headers, body) == (200, "duplicate, already accepted")
        assert receiver.accept(headers, body.replace(b"e1", b"e2"))[0] == 401
        assert receiver.work.get_nowait() == {"id": "e1", "data": {}}
        assert receiver.work.empty()
    finally:
        receiver.server.server_close()


# --- The stream consumer's parser ---------------------------------------------------------------


def status(**changes: object) -> PublicDossierStatus:
    fields: dict[str, object] = {
        "dossier_code": "000.00.21.G12-260105-0001",
        "occurred_at": datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
        "procedure_code": "1.004473",
        "unit_code": "G12",
        "state": DossierState.RECEIVED,
        "action": "receive",
        "channel": Channel.ONLINE,
        "due_at": datetime(2026, 1, 20, 17, 0, tzinfo=UTC),
    }
    return PublicDossierStatus.model_validate({**fields, **changes})


def test_the_parser_reads_what_the_platform_publishes() -> None:
    cloud_event = wrap(status(), "/dvc/notification/public-stream")
    record = cloud_event.to_kafka()
    event = decode(record.value, record.headers)
    assert event is not None
    assert (event.id, event.source, event.type) == (
        cloud_event.id,
        "/dvc/notification/public-stream",
        "vn.gov.most.dvc.public.dossier-status.v1",
    )
    assert (event.dossier_code, event.unit_code, event.procedure_code) == (
        "000.00.21.G12-260105-0001",
        "G12",
        "1.004473",
    )
    assert (event.state, event.action, event.channel) == (2, "receive", 2)
    assert event.occurred_at == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert event.due_at == datetime(2026, 1, 20, 17, 0, tzinfo=UTC)
    assert event.time == cloud_event.time
    assert "Đã tiếp nhận" in event.state_label
    assert stream_consumer.describe(event) == (
        "2026-01-05T08:00:00+00:00 000.00.21.G12-260105-0001 unit=G12 procedure=1.004473 "
        "action=receive state=2 Đã tiếp nhận (received) channel=online "
        "due=2026-01-20T17:00:00+00:00"
    )


def test_the_parser_tolerates_new_fields_values_and_attributes() -> None:
    record = wrap(status(), "/dvc/notification/public-stream").to_kafka()
    data = json.loads(record.value)
    data.update(state=11, action="hand_over_to_archive", channel=4, archive_box="B-17")
    headers = [*record.headers, ("ce_traceparent", b"00-abc-def-01"), ("X-Other", b"1")]
    event = decode(json.dumps(data).encode(), headers)
    assert event is not None
    assert (event.state, event.action, event.channel) == (11, "hand_over_to_archive", 4)
    assert "unknown" in event.state_label
    assert event.data["archive_box"] == "B-17"
    assert event.extensions == {"traceparent": "00-abc-def-01"}
    assert "channel=4" in stream_consumer.describe(event)


def test_another_event_type_is_skipped_and_a_broken_record_is_reported() -> None:
    record = wrap(status(), "/dvc/notification/public-stream").to_kafka()
    future_type = [
        (n, b"vn.gov.most.dvc.public.other.v1" if n == "ce_type" else v) for n, v in record.headers
    ]
    assert decode(record.value, future_type) is None
    without_id = [(n, v) for n, v in record.headers if n != "ce_id"]
    with pytest.raises(NotAnEvent, match="ce_id"):
        decode(record.value, without_id)
    with pytest.raises(NotAnEvent, match="JSON"):
        decode(b"{not json", record.headers)
    data = json.loads(record.value)
    del data["unit_code"]
    with pytest.raises(NotAnEvent, match="unit_code"):
        decode(json.dumps(data).encode(), record.headers)
    with pytest.raises(NotAnEvent, match="version"):
        decode(
            record.value, [(n, b"2.0" if n == "ce_specversion" else v) for n, v in record.headers]
        )


def test_repeated_ids_are_dropped_within_the_window() -> None:
    seen = stream_consumer.RecentIds(capacity=2)
    assert [seen.first_time(i) for i in ("a", "b", "a", "c", "a")] == [
        True,
        True,
        False,
        True,
        False,
    ]
    assert seen.first_time("b") is True  # forgotten: beyond the window


# --- The stream consumer's configuration --------------------------------------------------------


def test_the_configuration_comes_from_the_environment_and_checks_the_group_prefix() -> None:
    env = {
        "KAFKA_BOOTSTRAP": "kafka.example:9094",
        "KAFKA_USERNAME": "agency-national-portal",
        "KAFKA_PASSWORD": "pw",
        "KAFKA_GROUP": "national-portal-status",
    }
    config = Config.from_env(env)
    assert (config.security_protocol, config.topic) == ("SASL_SSL", "dvc.public.dossier-status.v1")
    options = stream_consumer.security_options(config)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "agency-national-portal"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

    with pytest.raises(ConfigError, match="'national-portal-'"):
        Config.from_env({**env, "KAFKA_GROUP": "status-reader"})
    with pytest.raises(ConfigError, match="KAFKA_PASSWORD"):
        Config.from_env({**env, "KAFKA_PASSWORD": ""})
    with pytest.raises(ConfigError, match="KAFKA_GROUP"):
        Config.from_env({k: v for k, v in env.items() if k != "KAFKA_GROUP"})
    with pytest.raises(ConfigError, match="SASL_SSL"):
        Config.from_env({**env, "KAFKA_SECURITY_PROTOCOL": "SSL"})
    local = Config.from_env(
        {
            "KAFKA_BOOTSTRAP": "127.0.0.1:9092",
            "KAFKA_GROUP": "x",
            "KAFKA_SECURITY_PROTOCOL": "plaintext",
        }
    )
    assert stream_consumer.security_options(local) == {"security_protocol": "PLAINTEXT"}


def test_the_register_client_refuses_a_time_without_offset() -> None:
    from examples.agencies.register_webhook import _iso

    with pytest.raises(ValueError, match="offset"):
        _iso(datetime(2026, 1, 5))
    assert (
        _iso(datetime(2026, 1, 5, tzinfo=UTC) - timedelta(hours=7)) == "2026-01-04T17:00:00+00:00"
    )


def test_the_webhook_body_is_described_on_one_line() -> None:
    body = webhook_body(wrap(status(), "/dvc/notification/public-stream"))
    line = webhook_receiver.describe(json.loads(body))
    assert "000.00.21.G12-260105-0001 unit=G12 procedure=1.004473 action=receive state=2" in line
