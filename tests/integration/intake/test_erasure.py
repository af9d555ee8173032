"""Erasing the personal data of finished dossiers past retention (issue 14, Decree 13/2023):
`python -m services.intake.erasure`, against the real FerretDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from services.intake.adapters.erasure import DossierErasureStore
from services.intake.adapters.shipped_catalogue import load_catalogue
from services.intake.adapters.store import (
    ERASABLE,
    INDEXES,
    IdempotencyClaim,
    IntakeStore,
    NewAttachment,
)
from services.intake.domain.dossier import Dossier, Rating, processing_step
from services.intake.domain.erasure import ERASED_NAME
from services.intake.erasure import erase_finished_dossiers, main
from shared.contracts.events import Channel, DocumentRef, DossierState, StepAction
from tests.factories import dossier_code, processed

IDENTIFIER = "001303004567"
PHONE = "0912345678"
EMAIL = "lan.nguyen@example.vn"
NOW = datetime.now(UTC)


async def new_dossier(store: IntakeStore, sequence: int) -> str:
    code = dossier_code(sequence)
    procedure = load_catalogue()[1][0]
    [storage_id] = await store.store_attachments(
        [
            NewAttachment(
                b"%PDF-1.4 CCCD " + IDENTIFIER.encode(),
                file_name=f"CCCD {IDENTIFIER}.pdf",
                content_type="application/pdf",
                metadata={"dossier": code},
            )
        ]
    )
    document = DocumentRef(
        document_type="cccd",
        file_name=f"CCCD {IDENTIFIER}.pdf",
        content_type="application/pdf",
        size_bytes=20,
        storage_id=storage_id,
    )
    dossier = Dossier.submitted(
        code=code,
        procedure=procedure,
        applicant={"kind": "person", "name": "Nguyễn Thị Lan", "identifier": IDENTIFIER},
        contact={"email": EMAIL, "phone": PHONE},
        form={"dia_chi": "12 Trần Hưng Đạo, Hà Nội", "so_dien_thoai": PHONE},
        documents=[document],
        channel=Channel.ONLINE,
        received_at=NOW - timedelta(days=900),
        tracking_secret="secret",
    )
    # Submitted with an Idempotency-Key: its sealed receipt is kept with it.
    answer = IdempotencyClaim(f"online:key-{code}", "r").answer(201, {"dossier_code": code})
    await store.insert_dossier(dossier, [], answer=answer)
    return code


async def step(store: IntakeStore, code: str, state: DossierState, action: StepAction, at):
    event = processed(code, state, action, occurred_at=at)
    found = processing_step(event)
    assert found is not None
    assert await store.apply_processing_step(code, f"event-{code}-{action}", found)


def personal(document: dict[str, Any]) -> list[str]:
    text = json.dumps(document, default=str, ensure_ascii=False)
    return [
        value
        for value in (IDENTIFIER, PHONE, EMAIL, "Nguyễn Thị Lan", "Trần Hưng Đạo")
        if value in text
    ]


@pytest.fixture
async def dossiers(mongo_db) -> dict[str, str]:
    """Dossiers in every situation: finished long ago (3, 8, 10), finished recently, open."""
    store = IntakeStore(mongo_db)
    await store.ensure_indexes()
    old = NOW - timedelta(days=800)
    codes = {}
    for sequence, (name, state, action, at) in enumerate(
        [
            ("returned_long_ago", DossierState.RESULT_RETURNED, StepAction.RETURN_RESULT, old),
            ("refused_long_ago", DossierState.STOPPED, StepAction.REFUSE, old),
            ("not_received_long_ago", DossierState.NOT_RECEIVED, StepAction.REFUSE_INTAKE, old),
            ("returned_recently", DossierState.RESULT_RETURNED, StepAction.RETURN_RESULT, NOW),
            ("open_long_ago", DossierState.IN_PROCESSING, StepAction.RECEIVE, old),
        ],
        start=1,
    ):
        code = await new_dossier(store, sequence)
        await step(store, code, state, action, at)
        codes[name] = code
    await mongo_db["dossiers"].update_one(
        {"_id": codes["returned_long_ago"]},
        {"$set": {"rating": Rating(score=5, comment=f"Gọi {PHONE}", at=old).model_dump()}},
    )
    return codes


async def test_finished_dossiers_past_retention_lose_their_personal_data(mongo_db, dossiers):
    result = await erase_finished_dossiers(mongo_db, older_than_days=730)

    erased = {"returned_long_ago", "refused_long_ago", "not_received_long_ago"}
    assert sorted(result.erased) == sorted(dossiers[name] for name in erased)
    for name, code in dossiers.items():
        stored = await mongo_db["dossiers"].find_one({"_id": code})
        if name in erased:
            assert personal(stored) == [], name
            assert stored["applicant"] == {"kind": "person", "name": ERASED_NAME, "identifier": ""}
            assert stored["personal_data_erased_at"] is not None
            assert "idempotency_answer" not in stored  # the sealed receipt named the files
            # What the Ministry accounts for stays: the dossier, its states, its history.
            assert stored["status"]["state"] in (3, 8, 10)
            assert stored["documents"][0]["document_type"] == "cccd"
            assert stored["history"]
            # The stored dossier still loads (the staff and tracking views).
            Dossier.model_validate(stored)
        else:
            assert IDENTIFIER in json.dumps(stored, default=str), name
            assert stored["idempotency_answer"]["sealed_body"], name
    rated = await mongo_db["dossiers"].find_one({"_id": dossiers["returned_long_ago"]})
    assert rated["rating"]["score"] == 5 and rated["rating"]["comment"] is None
    # The attached files are gone, the kept dossiers' files are not.
    files = [f["metadata"]["dossier"] async for f in mongo_db["attachments.files"].find({})]
    assert sorted(files) == sorted(dossiers[n] for n in dossiers if n not in erased)


async def test_erasure_is_idempotent(mongo_db, dossiers) -> None:
    first = await erase_finished_dossiers(mongo_db, older_than_days=730)
    before = [d async for d in mongo_db["dossiers"].find({}).sort("_id")]
    second = await erase_finished_dossiers(mongo_db, older_than_days=730, now=NOW)
    assert len(first.erased) == 3 and second.erased == []
    assert [d async for d in mongo_db["dossiers"].find({}).sort("_id")] == before


async def test_a_dry_run_lists_and_changes_nothing(mongo_db, dossiers) -> None:
    before = [d async for d in mongo_db["dossiers"].find({}).sort("_id")]
    result = await erase_finished_dossiers(mongo_db, older_than_days=730, dry_run=True)
    assert len(result.erased) == 3
    assert [d async for d in mongo_db["dossiers"].find({}).sort("_id")] == before
    assert await mongo_db["attachments.files"].count_documents({}) == 5


async def test_a_shorter_period_reaches_the_recent_finished_dossier(mongo_db, dossiers) -> None:
    later = NOW + timedelta(days=1)
    result = await erase_finished_dossiers(mongo_db, older_than_days=0, now=later)
    assert dossiers["returned_recently"] in result.erased
    assert dossiers["open_long_ago"] not in result.erased


async def test_dossiers_finished_before_the_marker_are_dated_once(mongo_db, dossiers) -> None:
    code = dossiers["refused_long_ago"]
    await mongo_db["dossiers"].update_one(
        {"_id": code}, {"$unset": {ERASABLE: "", "finished_at": ""}}
    )
    assert code not in (await erase_finished_dossiers(mongo_db, 730, dry_run=True)).erased
    result = await erase_finished_dossiers(mongo_db, 730, mark_finished=True)
    assert result.marked == 1 and code in result.erased
    again = await erase_finished_dossiers(mongo_db, 730, mark_finished=True)
    assert again.marked == 0 and again.erased == []


async def test_the_search_is_served_by_the_declared_index(mongo_db, dossiers) -> None:
    from tests.integration.test_query_indexes import Query, index_problem, leading_keys

    store = DossierErasureStore(mongo_db)
    cutoff = NOW - timedelta(days=730)
    assert len(await store.erasable_before(cutoff, limit=10)) == 3
    query = Query(
        "DossierErasureStore.erasable_before",
        None,
        "intake",
        "dossiers",
        {ERASABLE: True, "finished_at": {"$lt": cutoff}},
        sort={"finished_at": 1},
        limit=10,
    )
    leading = leading_keys({"dossiers": INDEXES["dossiers"]})["dossiers"]
    assert await index_problem(mongo_db, query, leading) is None


def test_the_command_line_dry_run(monkeypatch, mongo_url, capsys) -> None:
    name = f"test_erasure_cli_{ObjectId()}"
    monkeypatch.setenv("DVC_INTAKE_MONGO_URL", mongo_url)
    monkeypatch.setenv("DVC_INTAKE_MONGO_DATABASE", name)
    try:
        assert main(["--older-than-days", "30", "--dry-run"]) == 0
    finally:
        from pymongo import MongoClient

        with MongoClient(mongo_url) as client:
            client.drop_database(name)
    assert "would erase the personal data of 0 dossier(s)" in capsys.readouterr().out
