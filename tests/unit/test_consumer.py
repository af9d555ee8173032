"""Retries, dead letters and malformed input, without a broker (see tests/integration for that)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError
from pydantic import BaseModel, Field
from pymongo.errors import (
    AutoReconnect,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from shared.contracts.cloudevents import wrap
from shared.contracts.events import DossierSubmitted
from shared.runtime.consumer import (
    PARKED_SINCE_HEADER,
    Outcome,
    PermanentError,
    RetryPolicy,
    handle_record,
)
from shared.runtime.failures import (
    AwaitingEarlierEvent,
    OutageWatch,
    StoppedDuringOutage,
    is_transient,
    mask_personal,
)
from tests.factories import submitted


@dataclass
class DeadLetters:
    written: list[tuple[str, bytes, bytes | None, dict[str, str]]] = field(default_factory=list)

    async def __call__(
        self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        self.written.append((topic, value, key, headers))


def record_of(value: bytes, headers: list[tuple[str, bytes]], key: bytes = b"k") -> ConsumerRecord:
    return ConsumerRecord(
        topic="dvc.dossier.submitted.v1",
        partition=2,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=headers,
    )


def valid_record() -> ConsumerRecord:
    record = wrap(submitted(), source="/t").to_kafka()
    return record_of(record.value, record.headers, record.key)


async def no_sleep(_: float) -> None:
    return None


async def run(
    record: ConsumerRecord, handler, dead_letters: DeadLetters, attempts: int = 3
) -> Outcome:
    return await handle_record(
        record,
        handler=handler,
        expected=[DossierSubmitted],
        group="processing",
        dead_letter_topic="dvc.dossier.submitted.v1.processing.dlq",
        write_dead_letter=dead_letters,
        policy=RetryPolicy(max_attempts=attempts),
        sleep=no_sleep,
    )


async def test_a_transient_failure_is_retried_until_it_succeeds() -> None:
    calls: list[str] = []

    async def flaky(event, cloud_event) -> None:
        calls.append(event.dossier_code)
        if len(calls) < 3:
            raise ConnectionError("database unavailable")

    dead_letters = DeadLetters()
    assert await run(valid_record(), flaky, dead_letters) is Outcome.HANDLED
    assert len(calls) == 3
    assert dead_letters.written == []


async def test_after_the_last_attempt_the_message_goes_to_its_dead_letter_topic_intact() -> None:
    async def buggy(event, cloud_event) -> None:
        raise LookupError("no rule for this state")

    record = valid_record()
    dead_letters = DeadLetters()
    assert await run(record, buggy, dead_letters, attempts=4) is Outcome.DEAD_LETTERED

    [(topic, value, key, headers)] = dead_letters.written
    assert topic == "dvc.dossier.submitted.v1.processing.dlq"
    assert (value, key) == (record.value, record.key)
    assert headers["dlq_reason"] == "exhausted"
    assert headers["dlq_attempts"] == "4"
    assert headers["dlq_error"] == "LookupError: no rule for this state"
    assert (headers["dlq_original_partition"], headers["dlq_original_offset"]) == ("2", "41")
    assert headers["ce_type"] == "vn.gov.most.dvc.dossier.submitted.v1"  # original headers kept


async def test_a_permanent_error_is_dead_lettered_without_retrying() -> None:
    calls = 0

    async def unknown_procedure(event, cloud_event) -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("unknown procedure 9.999999")

    dead_letters = DeadLetters()
    assert await run(valid_record(), unknown_procedure, dead_letters) is Outcome.DEAD_LETTERED
    assert calls == 1
    assert dead_letters.written[0][3]["dlq_reason"] == "permanent"


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (b"not json at all", None),
        (b"{}", [("ce_specversion", b"1.0")]),
        (b"\x00\x01", "valid-headers"),
    ],
    ids=["no-headers", "missing-attributes", "garbage-body"],
)
async def test_a_malformed_message_never_reaches_the_handler(value: bytes, headers) -> None:
    if headers == "valid-headers":
        headers = wrap(submitted(), source="/t").to_kafka().headers

    async def must_not_run(event, cloud_event) -> None:
        raise AssertionError("handler called with a malformed message")

    dead_letters = DeadLetters()
    assert (
        await run(record_of(value, headers or []), must_not_run, dead_letters)
        is Outcome.DEAD_LETTERED
    )
    assert dead_letters.written[0][3]["dlq_reason"] == "malformed"
    assert dead_letters.written[0][1] == value


def test_backoff_grows_and_stays_bounded() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    assert all(0 <= policy.backoff(1) <= 0.1 for _ in range(100))
    assert all(0 <= policy.backoff(10) <= 1.0 for _ in range(100))
    assert max(policy.backoff(4) for _ in range(200)) > 0.1


async def test_an_outage_is_waited_out_however_long_and_never_dead_lettered() -> None:
    failures = 0

    async def database_away(event, cloud_event) -> None:
        nonlocal failures
        if failures < 25:  # far more than max_attempts
            failures += 1
            raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    dead_letters = DeadLetters()
    outcome = await handle_record(
        valid_record(),
        handler=database_away,
        expected=[DossierSubmitted],
        group="processing",
        dead_letter_topic="dlq",
        write_dead_letter=dead_letters,
        policy=RetryPolicy(max_attempts=3, base_delay=0.0001, outage_max_delay=0.001),
        watch=OutageWatch(),  # the service's stop signal: what makes waiting without limit safe
    )
    assert outcome is Outcome.HANDLED
    assert failures == 25
    assert dead_letters.written == []

    # Without a stop signal (a tool, a test harness) the bounded retries still apply.
    failures = 0
    assert await run(valid_record(), database_away, dead_letters, attempts=3) is (
        Outcome.DEAD_LETTERED
    )


async def test_the_service_is_not_ready_while_a_group_waits_out_an_outage() -> None:
    watch = OutageWatch()
    seen_while_waiting: list[list[str]] = []
    failures = 0

    async def broker_away(event, cloud_event) -> None:
        nonlocal failures
        seen_while_waiting.append(watch.waiting)
        if failures < 2:
            failures += 1
            raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9092")

    outcome = await handle_record(
        valid_record(),
        handler=broker_away,
        expected=[DossierSubmitted],
        group="processing",
        dead_letter_topic="dlq",
        write_dead_letter=DeadLetters(),
        policy=RetryPolicy(base_delay=0.001),
        watch=watch,
    )
    assert outcome is Outcome.HANDLED
    # Not ready from the first infrastructure failure until the event passed.
    assert seen_while_waiting == [[], ["processing"], ["processing"]]
    assert watch.healthy()

    waits: list[list[str]] = []

    async def always_away(event, cloud_event) -> None:
        waits.append(watch.waiting)
        if len(waits) == 3:
            watch.stopping.set()  # the service is asked to stop during the outage
        raise ServerSelectionTimeoutError("no primary")

    dead_letters = DeadLetters()
    with pytest.raises(StoppedDuringOutage):
        await handle_record(
            valid_record(),
            handler=always_away,
            expected=[DossierSubmitted],
            group="processing",
            dead_letter_topic="dlq",
            write_dead_letter=dead_letters,
            policy=RetryPolicy(base_delay=0.001),
            watch=watch,
        )
    assert dead_letters.written == []  # left uncommitted: redelivered after the restart
    assert watch.healthy()


async def test_dead_letter_headers_carry_no_personal_data() -> None:
    class Contact(BaseModel):
        phone: str = Field(pattern=r"^0\d{9}$")
        citizen_id: int

    async def validates_contact(event, cloud_event) -> None:
        Contact.model_validate({"phone": "+84 912 345 678", "citizen_id": "001099012345x"})

    dead_letters = DeadLetters()
    assert await run(valid_record(), validates_contact, dead_letters, attempts=1) is (
        Outcome.DEAD_LETTERED
    )
    error = dead_letters.written[0][3]["dlq_error"]
    assert "phone" in error and "citizen_id" in error  # what was wrong stays readable
    assert "912" not in error and "001099012345" not in error

    record = wrap(submitted(), source="/t").to_kafka()
    data = json.loads(record.value)
    data["applicant"]["identifier"] = "00109901234567890"  # too long: quoted by pydantic
    data["contact"] = {"phone": ["0912345678"], "email": 42}
    malformed = record_of(json.dumps(data).encode(), record.headers, record.key)
    dead_letters = DeadLetters()
    assert await run(malformed, validates_contact, dead_letters) is Outcome.DEAD_LETTERED
    error = dead_letters.written[0][3]["dlq_error"]
    assert error.startswith("MalformedEvent: invalid vn.gov.most.dvc.dossier.submitted.v1 data")
    assert "applicant.identifier" in error and "contact.phone" in error
    assert "0010990123" not in error and "0912345678" not in error


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ServerSelectionTimeoutError("no servers"), True),
        (AutoReconnect("connection reset"), True),
        (NotPrimaryError("not primary"), True),
        (OperationFailure("exceeded time limit", code=262), True),
        (OperationFailure("duplicate key", code=11000), False),
        (KafkaConnectionError("unreachable"), True),
        (RequestTimedOutError(), True),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (httpx.ConnectError("refused"), True),
        (ValueError("bad amount"), False),
        (KeyError("case"), False),
    ],
)
def test_infrastructure_failures_are_told_from_the_others(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient
    try:
        raise RuntimeError("store call failed") from error
    except RuntimeError as wrapped:
        assert is_transient(wrapped) is transient  # also when wrapped


def test_personal_data_is_masked_in_free_text() -> None:
    text = "sms to +84 912 345 678 failed for an@example.vn, CCCD 001099012345, code 000.00.01.H12"
    assert mask_personal(text) == (
        "sms to [number] failed for [email], CCCD [number], code 000.00.01.H12"
    )


async def no_wait(_: float) -> None:
    return None


async def handle_awaiting(
    handler, dead_letters: DeadLetters, record: ConsumerRecord | None = None, now: float = 1e9
) -> Outcome:
    return await handle_record(
        record or valid_record(),
        handler=handler,
        expected=[DossierSubmitted],
        group="processing",
        dead_letter_topic="dlq",
        write_dead_letter=dead_letters,
        policy=RetryPolicy(max_attempts=3, dependency_wait=600),
        sleep=no_wait,
        clock=lambda: now,
    )


async def test_an_event_awaiting_an_earlier_one_is_parked_on_its_own_topic() -> None:
    """A withdrawal before its case (the case comes from another topic, maybe from a partition
    the same consumer has not read yet): after a few quick tries it goes back to the end of its
    topic, so the consumer moves on, and comes round again."""
    tries = 0

    async def withdrawal_before_its_case(event, cloud_event) -> None:
        nonlocal tries
        tries += 1
        raise AwaitingEarlierEvent("no case yet")

    record, requeued = valid_record(), DeadLetters()
    assert await handle_awaiting(withdrawal_before_its_case, requeued, record) is Outcome.PARKED
    assert tries == 3
    [(topic, value, key, headers)] = requeued.written
    assert (topic, value, key) == (record.topic, record.value, record.key)  # same partition
    assert headers["ce_id"] == dict(record.headers)["ce_id"].decode()  # same event: idempotent
    assert datetime.fromisoformat(headers[PARKED_SINCE_HEADER]) == datetime.fromtimestamp(1e9, UTC)

    # Parked again later, it keeps the time it was first parked.
    again = DeadLetters()
    parked = record_of(record.value, [(k, v.encode()) for k, v in headers.items()], record.key)
    assert await handle_awaiting(withdrawal_before_its_case, again, parked, now=1e9 + 60) is (
        Outcome.PARKED
    )
    assert again.written[0][3][PARKED_SINCE_HEADER] == headers[PARKED_SINCE_HEADER]

    # Once the case is there, the parked event is applied.
    async def case_opened(event, cloud_event) -> None:
        return None

    assert await handle_awaiting(case_opened, DeadLetters(), parked) is Outcome.HANDLED


async def test_an_earlier_event_that_never_comes_sends_the_parked_one_to_its_dead_letters() -> None:
    async def case_never_opened(event, cloud_event) -> None:
        raise AwaitingEarlierEvent("no case yet")

    since = datetime.fromtimestamp(1e9, UTC).isoformat()
    record = valid_record()
    parked = record_of(record.value, [*record.headers, (PARKED_SINCE_HEADER, since.encode())])
    dead_letters = DeadLetters()
    outcome = await handle_awaiting(case_never_opened, dead_letters, parked, now=1e9 + 600)
    assert outcome is Outcome.DEAD_LETTERED
    [(topic, _, _, headers)] = dead_letters.written
    assert (topic, headers["dlq_reason"]) == ("dlq", "awaiting")
