"""A dossier number is drawn only for a dossier that is stored: whatever a client sends that is
refused leaves the daily sequence where it was (Circular 01/2018 codes have no gaps)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from services.intake.domain.dossier_code import sequence_key
from services.intake.domain.submission import UploadedFile, fingerprint
from services.intake.service.dossiers import now
from tests.intake_samples import PDF, PNG, dossier_json, multipart, trademark_files

DEEP = {"a": {"b": 1}}
for _ in range(30):
    DEEP = {"a": DEEP}


def with_form(form_json: str) -> str:
    """A dossier part whose `form` is the given raw JSON (numbers JSON has but Python's
    `json.dumps` would not write as such)."""
    return dossier_json(form="__FORM__").replace('"__FORM__"', form_json)


async def number_in_use(intake) -> int:
    """The last number drawn today for this agency (0 if none yet)."""
    key = sequence_key(intake.settings.agency_id, now())
    counter = await intake.components.store.sequences.find_one({"_id": key})
    return int(counter["value"]) if counter else 0


def sequence_of(response) -> int:
    assert response.status_code == 201, response.text
    return int(response.json()["dossier_code"].rsplit("-", 1)[1])


async def online(intake, dossier: str | None = None, files=None, **headers):
    return await intake.client.post(
        "/api/v1/dossiers",
        **multipart(dossier or dossier_json(), trademark_files() if files is None else files),
        headers=headers,
    )


async def at_counter(intake, dossier: str, files=None):
    return await intake.client.post(
        "/api/v1/counter/dossiers",
        **multipart(dossier, trademark_files() if files is None else files),
        headers=intake.token("counter_officer", unit="SHTT"),
    )


async def test_refused_requests_draw_no_dossier_number(intake) -> None:
    key = str(uuid.uuid4())
    first = sequence_of(await online(intake, **{"Idempotency-Key": key}))

    in_progress_key = str(uuid.uuid4())
    await intake.components.store.reserve_idempotency_key(
        f"online:{in_progress_key}",
        fingerprint(
            dossier_json().encode(),
            [
                UploadedFile(name, file_name, data)
                for name, (file_name, data, _) in trademark_files()
            ],
        ),
        reservation="another request, still running",
    )
    wrong_type = [
        ("to_khai", ("tk.png", PNG, "image/png")),  # to_khai takes PDF or DOCX
        ("mau_nhan_hieu", ("m.png", PNG, "image/png")),
    ]
    not_a_pdf = [
        ("to_khai", ("tk.pdf", b"just text", "application/pdf")),
        ("mau_nhan_hieu", ("m.png", PNG, "image/png")),
    ]
    oversized = [
        ("to_khai", ("tk.pdf", PDF + b"0" * intake.settings.max_file_bytes, "application/pdf")),
        ("mau_nhan_hieu", ("m.png", PNG, "image/png")),
    ]
    part = PDF + b"0" * (intake.settings.max_file_bytes - len(PDF) - 10)
    dossier_too_large = [
        ("to_khai", ("a.pdf", part, "application/pdf")),
        ("tai_lieu_uu_tien", ("b.pdf", part, "application/pdf")),
        ("mau_nhan_hieu", ("c.pdf", part, "application/pdf")),
    ]
    bad_person = {"kind": "person", "name": "A", "identifier": "12345"}
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    cases = {
        "invalid applicant": lambda: online(intake, dossier_json(applicant=bad_person)),
        "not JSON": lambda: online(intake, "{not json"),
        "unknown field": lambda: online(intake, dossier_json(surprise=1)),
        "form integer over 64 bits": lambda: online(
            intake, with_form('{"so_tien": 99999999999999999999}')
        ),
        "form field name with a dot": lambda: online(intake, with_form('{"ten.nhan": "Sao Mai"}')),
        "form field name with a dollar": lambda: online(intake, with_form('{"$ten": "Sao Mai"}')),
        "form field name with a NUL": lambda: online(
            intake, with_form('{"ten\\u0000": "Sao Mai"}')
        ),
        "form nested too deep": lambda: online(intake, with_form(json.dumps(DEEP))),
        "form with NaN": lambda: online(intake, with_form('{"x": NaN}')),
        "form with an array in an array": lambda: online(intake, with_form('{"bang": [[1, 2]]}')),
        "form text with a NUL": lambda: online(intake, with_form('{"ten": "Sao\\u0000Mai"}')),
        "wrong attachment type": lambda: online(intake, files=wrong_type),
        "content not matching its type": lambda: online(intake, files=not_a_pdf),
        "oversized file": lambda: online(intake, files=oversized),
        "dossier over its limit": lambda: online(intake, files=dossier_too_large),
        "missing document": lambda: online(intake, files=trademark_files()[:1]),
        "unexpected document": lambda: online(
            intake, files=[*trademark_files(), ("khong_co", ("x.pdf", PDF, "application/pdf"))]
        ),
        "unknown procedure": lambda: online(intake, dossier_json(procedure="9.999999")),
        "level-2 procedure online": lambda: online(intake, dossier_json(procedure="1.002733")),
        "Idempotency-Key reused for another request": lambda: online(
            intake, dossier_json(form={"ten_nhan_hieu": "Khác"}), **{"Idempotency-Key": key}
        ),
        "Idempotency-Key still in progress": lambda: online(
            intake, **{"Idempotency-Key": in_progress_key}
        ),
        "Idempotency-Key too short": lambda: online(intake, **{"Idempotency-Key": "short"}),
        "counter: receipt in the future": lambda: at_counter(
            intake, dossier_json(received_at=future)
        ),
        "counter: form integer over 64 bits": lambda: at_counter(
            intake, with_form('{"so_tien": -99999999999999999999}')
        ),
        "counter: wrong attachment type": lambda: at_counter(
            intake, dossier_json(), files=wrong_type
        ),
    }
    for case, request in cases.items():
        before = await number_in_use(intake)
        response = await request()
        assert 400 <= response.status_code < 500, f"{case}: {response.status_code}"
        assert response.headers["content-type"] == "application/problem+json", case
        assert await number_in_use(intake) == before, f"{case} drew a dossier number"

    replay = await online(intake, **{"Idempotency-Key": key})
    assert sequence_of(replay) == first  # the first answer again, no new number
    assert sequence_of(await online(intake)) == first + 1
    assert sequence_of(await at_counter(intake, dossier_json(channel=1))) == first + 2


async def test_the_day_s_last_number_used_refuses_with_a_problem_and_keeps_nothing(intake) -> None:
    """Codes have four digits: the 10,000th dossier of a day cannot be numbered. The citizen gets
    a 503 problem saying when to come back (not a 500), and nothing of the request stays: its
    files are deleted and its Idempotency-Key is free for the retry."""
    store = intake.components.store
    key = sequence_key(intake.settings.agency_id, now())
    in_use = await number_in_use(intake)
    files_before = await store.attachments_files.count_documents({})
    await store.sequences.update_one({"_id": key}, {"$set": {"value": 9999}}, upsert=True)
    try:
        idempotency_key = str(uuid.uuid4())
        refused = await online(intake, **{"Idempotency-Key": idempotency_key})
        again = await online(intake, **{"Idempotency-Key": idempotency_key})
    finally:
        await store.sequences.update_one({"_id": key}, {"$set": {"value": in_use}})
    for response in (refused, again):  # the retry is refused the same way, not "in progress"
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:dvc:problem:daily-numbers-exhausted"
        assert 1 <= int(response.headers["retry-after"]) <= 24 * 3600
    assert await store.attachments_files.count_documents({}) == files_before
    assert sequence_of(await online(intake)) == in_use + 1  # the next day's numbering, here
