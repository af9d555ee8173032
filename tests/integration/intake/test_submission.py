"""Online and counter submissions through the HTTP API, against the real broker and database."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from services.intake.adapters.store import IdempotencyClaim, IdempotencyConflict
from services.intake.domain.dossier import Dossier
from services.intake.domain.idempotency import (
    SealedResponse,
    expiry_day,
    idempotency_answer_id,
    idempotency_record_id,
)
from shared.contracts.catalogue import Procedure
from shared.contracts.cloudevents import CloudEvent, unwrap
from shared.contracts.events import Channel, DossierSubmitted
from shared.contracts.topics import DOSSIER_SUBMITTED_TOPIC
from tests.intake_samples import (
    ORGANISATION,
    PDF,
    PNG,
    TRADEMARK,
    dossier_json,
    multipart,
    stored_dossier,
    trademark_files,
    valid_tax_code,
)
from tests.kafka_helpers import read_records


async def submit(intake, dossier: str | None = None, files=None, **headers):
    return await intake.client.post(
        "/api/v1/dossiers",
        **multipart(dossier or dossier_json(), trademark_files() if files is None else files),
        headers=headers,
    )


async def counts(intake) -> tuple[int, int]:
    store = intake.components.store
    return (
        await store.dossiers.count_documents({}),
        await store.db["attachments.files"].count_documents({}),
    )


async def test_a_submission_is_stored_and_announced_by_exactly_one_cloud_event(
    intake, kafka_bootstrap
) -> None:
    response = await submit(intake)
    assert response.status_code == 201, response.text
    receipt = response.json()
    code = receipt["dossier_code"]
    assert code.startswith(f"{intake.settings.agency_id}-")
    assert receipt["state"] == 1 and receipt["channel"] == Channel.ONLINE
    assert receipt["tracking_url"].startswith("https://dichvucong.most.gov.vn/api/v1/dossiers/")

    records = await read_records(kafka_bootstrap, intake.topic(DOSSIER_SUBMITTED_TOPIC), 1)
    mine = [r for r in records if r.key == code.encode()]
    assert len(mine) == 1
    headers = dict(mine[0].headers)
    assert headers["ce_type"] == b"vn.gov.most.dvc.dossier.submitted.v1"
    assert headers["ce_source"] == b"/dvc/intake"
    assert headers["ce_subject"] == code.encode()
    event = unwrap(CloudEvent.from_kafka(mine[0].value, mine[0].headers))
    assert isinstance(event, DossierSubmitted)
    assert event.procedure_code == TRADEMARK and event.unit_code == "SHTT" and event.level == 4
    assert {d.document_type for d in event.documents} == {"to_khai", "mau_nhan_hieu"}
    assert event.contact.phone == "+84912345678"


async def test_the_same_idempotency_key_twice_gives_one_dossier(intake) -> None:
    key = str(uuid.uuid4())
    before = await counts(intake)
    first = await submit(intake, **{"Idempotency-Key": key})
    second = await submit(intake, **{"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert (await counts(intake))[0] == before[0] + 1

    other = await submit(
        intake, dossier_json(form={"ten_nhan_hieu": "Khác"}), **{"Idempotency-Key": key}
    )
    assert other.status_code == 422
    assert other.json()["type"] == "urn:dvc:problem:idempotency-key-reused"


async def test_the_idempotency_record_keeps_no_secret_and_lapses(intake) -> None:
    """The replay still gives the citizen their tracking secret, but the database does not hold
    it (nor the key); an unfinished record after a crash, or an expired one, frees its key."""
    key = str(uuid.uuid4())
    first = await submit(intake, **{"Idempotency-Key": key})
    assert first.headers["cache-control"] == "no-store"  # the receipt carries the secret
    secret = first.json()["tracking_secret"]
    records = intake.components.store.idempotency
    stored = [r async for r in records.find({})]
    raw = json.dumps(stored, default=str)
    assert secret not in raw and key not in raw and first.json()["dossier_code"] not in raw
    # The answer is kept, sealed, in the dossier it stored.
    dossier = await intake.components.store.dossiers.find_one({"_id": first.json()["dossier_code"]})
    assert dossier["idempotency_answer"]["sealed_body"]
    assert secret not in json.dumps(dossier, default=str) and key not in str(dossier)
    replay = await submit(intake, **{"Idempotency-Key": key})
    assert replay.json() == first.json()  # double click: the same receipt, secret included

    # A request that crashed mid-way left its key "in progress": usable again after 5 minutes.
    stuck = str(uuid.uuid4())
    store = intake.components.store
    long_ago = datetime.now(UTC) - timedelta(minutes=6)
    reserve = partial(store.reserve_idempotency_key, f"online:{stuck}", "fp")
    assert await reserve(reservation="crashed", now=long_ago) is None
    assert await reserve(reservation="retry") is None  # taken over
    with pytest.raises(IdempotencyConflict):  # but not twice
        await reserve(reservation="another retry")

    # The hourly clean-up deletes records of past days, and only those.
    old = str(uuid.uuid4())
    days_ago = datetime.now(UTC) - timedelta(days=3)
    await store.reserve_idempotency_key(f"online:{old}", "fp", reservation="r", now=days_ago)
    before = await records.count_documents({})
    assert await store.delete_expired_idempotency_records(datetime.now(UTC).date()) == 1
    assert await records.count_documents({}) == before - 1


def new_dossier(procedure: Procedure) -> Dossier:
    return stored_dossier(procedure, f"G12-{uuid.uuid4().hex[:12]}")


async def test_a_late_answer_to_a_lapsed_reservation_is_not_replayed(intake) -> None:
    """A request stuck past 5 minutes lost its key to a retry; when it stores its dossier after
    all, that dossier's answer is not given to the retry's own retries (the retry is still
    running)."""
    store = intake.components.store
    key = f"online:{uuid.uuid4()}"
    long_ago = datetime.now(UTC) - timedelta(minutes=6)
    assert await store.reserve_idempotency_key(key, "fp", reservation="slow", now=long_ago) is None
    assert await store.reserve_idempotency_key(key, "fp", reservation="retry") is None
    procedure = await store.cached_procedure(TRADEMARK)
    late = IdempotencyClaim(key, reservation="slow").answer(201, {"dossier_code": "late"})
    await store.insert_dossier(new_dossier(procedure), [], answer=late)
    with pytest.raises(IdempotencyConflict) as conflict:
        await store.reserve_idempotency_key(key, "fp", reservation="double click")
    assert conflict.value.reason == "in-progress"
    retried = IdempotencyClaim(key, reservation="retry").answer(201, {"dossier_code": "retried"})
    await store.insert_dossier(new_dossier(procedure), [], answer=retried)
    replay = await store.reserve_idempotency_key(key, "fp", reservation="third")
    assert replay is not None and replay.body == {"dossier_code": "retried"}


class Killed(BaseException):
    """The process dies: nothing after this point runs, no clean-up either."""


async def test_a_dossier_stored_just_before_a_crash_is_replayed_not_submitted_again(
    intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Intake died right after the dossier's insert, before answering. The client retries with
    the same key after the 5 minutes that free an unanswered key: it gets that dossier's
    receipt, not a second dossier."""
    store = intake.components.store
    key = str(uuid.uuid4())
    stored: list[str] = []
    insert = store.insert_dossier

    async def insert_then_die(dossier, *args, **kwargs):
        await insert(dossier, *args, **kwargs)
        stored.append(dossier.code)
        raise Killed

    async def nothing(*_: object) -> None:
        return None

    monkeypatch.setattr(store, "insert_dossier", insert_then_die)
    monkeypatch.setattr(store, "release_idempotency_key", nothing)
    monkeypatch.setattr(store, "delete_attachments", nothing)
    before = await counts(intake)
    with pytest.raises(Killed):
        await submit(intake, **{"Idempotency-Key": key})
    monkeypatch.undo()
    six_minutes_ago = datetime.now(UTC) - timedelta(minutes=6)
    await store.idempotency.update_one(
        {"_id": idempotency_record_id(f"online:{key}")},
        {"$set": {"created_at": six_minutes_ago}},
    )

    retry = await submit(intake, **{"Idempotency-Key": key})
    assert retry.status_code == 201, retry.text
    assert retry.json()["dossier_code"] == stored[0] and retry.json()["tracking_secret"]
    assert (await counts(intake))[0] == before[0] + 1


async def test_a_record_answered_in_place_before_answers_had_their_own_is_replayed(
    intake,
) -> None:
    """Records written by the previous release (the answer inside the record) still replay."""
    store = intake.components.store
    key = f"online:{uuid.uuid4()}"
    now = datetime.now(UTC)
    await store.idempotency.insert_one(
        {
            "_id": idempotency_record_id(key),
            "fingerprint": "fp",
            "state": "completed",
            "status_code": 201,
            "sealed_body": SealedResponse.seal(key, {"dossier_code": "kept"}),
            "created_at": now,
            "expires_on": expiry_day(now),
        }
    )
    replay = await store.reserve_idempotency_key(key, "fp", reservation="new")
    assert replay is not None and replay.body == {"dossier_code": "kept"}


async def test_an_answer_kept_beside_its_record_by_the_previous_release_is_replayed(
    intake,
) -> None:
    """The release before this one kept each answer in a document of its own beside the record
    (`_id`: the record's and the reservation's); those still replay until they expire."""
    store = intake.components.store
    key = f"online:{uuid.uuid4()}"
    now = datetime.now(UTC)
    assert await store.reserve_idempotency_key(key, "fp", reservation="first") is None
    await store.idempotency.insert_one(
        {
            "_id": idempotency_answer_id(idempotency_record_id(key), "first"),
            "status_code": 201,
            "sealed_body": SealedResponse.seal(key, {"dossier_code": "beside"}),
            "created_at": now,
            "expires_on": expiry_day(now),
        }
    )
    replay = await store.reserve_idempotency_key(key, "fp", reservation="retry")
    assert replay is not None and replay.body == {"dossier_code": "beside"}


async def test_fifty_concurrent_submissions_get_fifty_distinct_gap_free_codes(intake) -> None:
    responses = await asyncio.gather(*(submit(intake) for _ in range(50)))
    assert all(r.status_code == 201 for r in responses), [
        r.text for r in responses if r.status_code != 201
    ][:1]
    codes = [r.json()["dossier_code"] for r in responses]
    assert len(set(codes)) == 50
    sequences = sorted(int(code.rsplit("-", 1)[1]) for code in codes)
    assert sequences == list(range(sequences[0], sequences[0] + 50))  # no gap, no repeat


async def test_an_organisation_with_a_valid_tax_code_can_submit(intake) -> None:
    applicant = {**ORGANISATION, "identifier": valid_tax_code()}
    response = await submit(intake, dossier_json(applicant=applicant))
    assert response.status_code == 201, response.text


async def assert_refused(intake, response, status: int, problem: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert problem in body["type"] or problem in body["title"] or problem in str(body.get("errors"))
    assert "Traceback" not in response.text


async def test_bad_input_is_refused_with_a_problem_and_nothing_is_stored(intake) -> None:
    before = await counts(intake)
    bad_tax = {
        **ORGANISATION,
        "identifier": valid_tax_code()[:-1] + str((int(valid_tax_code()[-1]) + 1) % 10),
    }
    cases = [
        (await submit(intake, files=trademark_files()[:1]), 422, "missing-document"),
        (
            await submit(
                intake,
                files=[
                    ("to_khai", ("tk.pdf", b"just text, not a PDF", "application/pdf")),
                    ("mau_nhan_hieu", ("m.png", PNG, "image/png")),
                ],
            ),
            422,
            "attachment",
        ),
        (
            await submit(
                intake,
                files=[
                    ("to_khai", ("tk.pdf", PDF + b"0" * 300_000, "application/pdf")),
                    ("mau_nhan_hieu", ("m.png", PNG, "image/png")),
                ],
            ),
            413,
            "large",
        ),
        (
            await submit(
                intake,
                dossier_json(applicant={"kind": "person", "name": "A", "identifier": "12345"}),
            ),
            422,
            "invalid-dossier",
        ),
        (await submit(intake, dossier_json(applicant=bad_tax)), 422, "invalid-dossier"),
        (await submit(intake, dossier_json(procedure="9.999999")), 422, "unknown-procedure"),
        (await submit(intake, dossier_json(procedure="1.002733")), 422, "not-online"),
        (
            await submit(
                intake, files=[*trademark_files(), ("khong_co", ("x.pdf", PDF, "application/pdf"))]
            ),
            422,
            "unknown-document",
        ),
        (await submit(intake, "{not json"), 422, "invalid-dossier"),
    ]
    for response, status, problem in cases:
        await assert_refused(intake, response, status, problem)
    assert await counts(intake) == before


async def test_a_body_over_the_limit_is_refused_before_it_is_read(intake) -> None:
    big = PDF + b"0" * (intake.settings.max_dossier_bytes + intake.settings.max_json_bytes)
    response = await submit(intake, files=[("to_khai", ("a.pdf", big, "application/pdf"))])
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_counter_dossiers_need_a_counter_officer_and_may_be_any_level(intake) -> None:
    dossier = dossier_json(procedure="1.002733", channel=1)
    files = []  # filled below from the procedure's mandatory documents
    procedure = (await intake.client.get("/api/v1/procedures/1.002733")).json()
    for document in procedure["documents"]:
        if document["mandatory"]:
            files.append((document["code"], ("a.pdf", PDF, "application/pdf")))
    unauthenticated = await intake.client.post(
        "/api/v1/counter/dossiers", **multipart(dossier, files)
    )
    assert unauthenticated.status_code == 401
    citizen_like = await intake.client.post(
        "/api/v1/counter/dossiers",
        **multipart(dossier, files),
        headers=intake.token("officer", unit="SHTT"),
    )
    assert citizen_like.status_code == 403
    response = await intake.client.post(
        "/api/v1/counter/dossiers",
        **multipart(dossier, files),
        headers=intake.token("counter_officer", unit="ATBXHN"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["state"] == 2 and response.json()["channel"] == Channel.COUNTER
