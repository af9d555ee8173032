"""Retries, dead letters and malformed input, without a broker (see tests/integration for that)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from aiokafka import ConsumerRecord

from shared.cloudevents import wrap
from shared.consumer import Outcome, PermanentError, RetryPolicy, handle_record
from shared.events import DossierSubmitted
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
    async def always_down(event, cloud_event) -> None:
        raise ConnectionError("database unavailable")

    record = valid_record()
    dead_letters = DeadLetters()
    assert await run(record, always_down, dead_letters, attempts=4) is Outcome.DEAD_LETTERED

    [(topic, value, key, headers)] = dead_letters.written
    assert topic == "dvc.dossier.submitted.v1.processing.dlq"
    assert (value, key) == (record.value, record.key)
    assert headers["dlq_reason"] == "exhausted"
    assert headers["dlq_attempts"] == "4"
    assert headers["dlq_error"] == "ConnectionError: database unavailable"
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
