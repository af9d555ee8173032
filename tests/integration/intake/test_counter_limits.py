"""A counter officer records dossiers only for their own unit, and backdates the receipt no
further than `counter_backdate_days` (issue 14): through the HTTP API, on the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.intake_samples import PDF, dossier_json, multipart, trademark_files

SUPPLY_CHAIN_PROCEDURE = "1.002733"  # received by ATBXHN (level 2: counter only)


async def record(intake, dossier: str, files=None, **token):
    return await intake.client.post(
        "/api/v1/counter/dossiers",
        **multipart(dossier, trademark_files() if files is None else files),
        headers=intake.token(*token.pop("roles", ("counter_officer",)), **token),
    )


async def dossiers(intake) -> int:
    return await intake.components.store.dossiers.count_documents({})


async def atbxhn_files(intake) -> list:
    procedure = (await intake.client.get(f"/api/v1/procedures/{SUPPLY_CHAIN_PROCEDURE}")).json()
    return [
        (d["code"], ("a.pdf", PDF, "application/pdf"))
        for d in procedure["documents"]
        if d["mandatory"]
    ]


async def test_an_officer_of_another_unit_is_refused_with_a_403_problem(intake) -> None:
    before = await dossiers(intake)
    response = await record(intake, dossier_json(channel=1), unit="ATBXHN")  # a SHTT procedure
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:dvc:problem:other-unit"
    assert problem["procedure_unit"] == "SHTT"
    assert "đơn vị khác" in problem["title"]
    assert await dossiers(intake) == before


async def test_an_officer_without_a_unit_is_refused(intake) -> None:
    response = await record(intake, dossier_json(channel=1), unit=None)
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "urn:dvc:problem:other-unit"


async def test_the_own_units_officer_and_an_administrator_may_record(intake) -> None:
    own = await record(intake, dossier_json(channel=1), unit="SHTT")
    assert own.status_code == 201, own.text
    files = await atbxhn_files(intake)
    admin = await record(
        intake,
        dossier_json(procedure=SUPPLY_CHAIN_PROCEDURE, channel=1),
        files,
        roles=("admin",),
        unit=None,
    )
    assert admin.status_code == 201, admin.text


async def test_a_receipt_backdated_beyond_the_window_is_refused_with_a_422_problem(
    intake,
) -> None:
    window = intake.settings.counter_backdate_days
    before = await dossiers(intake)
    too_old = datetime.now(UTC) - timedelta(days=window, hours=1)
    response = await record(
        intake, dossier_json(channel=3, received_at=too_old.isoformat()), unit="SHTT"
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "urn:dvc:problem:backdated-receipt"
    assert problem["backdate_days"] == window
    assert await dossiers(intake) == before


async def test_a_receipt_within_the_window_dates_the_dossier(intake) -> None:
    received = datetime.now(UTC) - timedelta(days=intake.settings.counter_backdate_days - 1)
    response = await record(
        intake, dossier_json(channel=3, received_at=received.isoformat()), unit="SHTT"
    )
    assert response.status_code == 201, response.text
    stored = await intake.components.store.dossiers.find_one(
        {"_id": response.json()["dossier_code"]}
    )
    assert stored is not None


async def test_a_receipt_in_the_future_is_still_refused(intake) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    response = await record(
        intake, dossier_json(channel=1, received_at=future.isoformat()), unit="SHTT"
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:dvc:problem:future-receipt"
