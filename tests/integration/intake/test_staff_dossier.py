"""Staff of a dossier's unit read it as submitted (applicant, contact, form data, documents) and
download its documents (`GET /api/v1/staff/dossiers/{code}[/documents/{storage_id}]`, issue 16:
the officers' workspace shows them); other units and roles are refused."""

from __future__ import annotations

from tests.intake_samples import PDF, dossier_json, multipart, trademark_files


async def submitted(intake) -> str:
    response = await intake.client.post(
        "/api/v1/dossiers", **multipart(dossier_json(), trademark_files())
    )
    assert response.status_code == 201, response.text
    code: str = response.json()["dossier_code"]
    return code


async def test_the_units_staff_read_the_dossier_and_download_its_documents(intake) -> None:
    code = await submitted(intake)
    for role in ("officer", "unit_head", "counter_officer"):
        answer = await intake.client.get(
            f"/api/v1/staff/dossiers/{code}", headers=intake.token(role, unit="SHTT")
        )
        assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["dossier_code"] == code and body["unit_code"] == "SHTT"
    assert body["applicant"]["identifier"] and body["contact"]
    assert "tracking_secret_sha256" not in body and "status" not in body
    documents = {d["document_type"]: d for d in body["documents"]}
    assert set(documents) == {"to_khai", "mau_nhan_hieu"}

    form = documents["to_khai"]
    download = await intake.client.get(
        f"/api/v1/staff/dossiers/{code}/documents/{form['storage_id']}",
        headers=intake.token("officer", unit="SHTT"),
    )
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    assert "attachment" in download.headers["content-disposition"]
    assert download.headers["cache-control"] == "no-store"


async def test_another_unit_another_role_or_document_are_refused(intake) -> None:
    code = await submitted(intake)
    other_unit = await intake.client.get(
        f"/api/v1/staff/dossiers/{code}", headers=intake.token("officer", unit="TDC")
    )
    assert other_unit.status_code == 403
    assert other_unit.headers["content-type"] == "application/problem+json"
    no_role = await intake.client.get(
        f"/api/v1/staff/dossiers/{code}", headers=intake.token("result_reader", unit="SHTT")
    )
    assert no_role.status_code == 403
    anonymous = await intake.client.get(f"/api/v1/staff/dossiers/{code}")
    assert anonymous.status_code == 401
    officer = intake.token("officer", unit="SHTT")
    missing = await intake.client.get(
        "/api/v1/staff/dossiers/000.00.21.G12-991231-9999", headers=officer
    )
    assert missing.status_code == 404
    for storage_id in ("65f0a1b2c3d4e5f6a7b8c9d0", "not-an-id"):
        unknown = await intake.client.get(
            f"/api/v1/staff/dossiers/{code}/documents/{storage_id}", headers=officer
        )
        assert unknown.status_code == 404
    elsewhere = await intake.client.get(
        f"/api/v1/staff/dossiers/{code}/documents/65f0a1b2c3d4e5f6a7b8c9d0",
        headers=intake.token("officer", unit="TDC"),
    )
    assert elsewhere.status_code == 403
