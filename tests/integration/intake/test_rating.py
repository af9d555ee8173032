"""The satisfaction rating: once per finished dossier, through the outbox onto
`dvc.dossier.rated.v1`; 409 problems while unfinished or once rated."""

from __future__ import annotations

import asyncio

from shared.contracts.events import DossierRated, DossierState
from shared.contracts.topics import DOSSIER_RATED_TOPIC
from tests.integration.intake.test_tracking import (
    events_of,
    new_dossier,
    processing_says,
    wait_for_state,
)


async def test_a_finished_dossier_is_rated_once_and_the_rating_announced(
    intake, kafka_bootstrap
) -> None:
    code, secret = await new_dossier(intake)
    url = f"/api/v1/dossiers/{code}/rating"
    headers = {"X-Tracking-Secret": secret}

    early = await intake.client.post(url, headers=headers, json={"score": 5})
    assert early.status_code == 409
    assert early.headers["content-type"].startswith("application/problem+json")
    assert early.json()["type"] == "urn:dvc:problem:not-finished"
    view = (await intake.client.get(f"/api/v1/dossiers/{code}", headers=headers)).json()
    assert view["ratable"] is False and view["rating"] is None

    await processing_says(intake, code, DossierState.RESULT_RETURNED, "return_result")
    view = await wait_for_state(intake, code, secret, 10)
    assert view["ratable"] is True

    invalid = await intake.client.post(url, headers=headers, json={"score": 6})
    assert invalid.status_code == 422
    wrong = await intake.client.post(
        url, headers={"X-Tracking-Secret": "not-the-secret"}, json={"score": 4}
    )
    assert wrong.status_code == 404

    # Two ratings at once (a double click): exactly one is kept.
    first, second = await asyncio.gather(
        intake.client.post(url, headers=headers, json={"score": 4, "comment": " Nhanh, gọn "}),
        intake.client.post(url, headers=headers, json={"score": 1}),
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [201, 409], (first.text, second.text)
    kept = first if first.status_code == 201 else second
    again = await intake.client.post(url, headers=headers, json={"score": 2})
    assert again.status_code == 409
    assert again.json()["type"] == "urn:dvc:problem:already-rated"

    view = (await intake.client.get(f"/api/v1/dossiers/{code}", headers=headers)).json()
    assert view["ratable"] is False
    assert view["rating"]["score"] == kept.json()["score"]

    [event] = await events_of(kafka_bootstrap, intake, DOSSIER_RATED_TOPIC, code)
    assert isinstance(event, DossierRated)
    assert event.score == kept.json()["score"]
    assert (event.procedure_code, event.unit_code) == ("1.004940", "SHTT")
    if event.score == 4:
        assert event.comment == "Nhanh, gọn"


async def test_a_stopped_dossier_can_be_rated(intake, kafka_bootstrap) -> None:
    code, secret = await new_dossier(intake)
    await processing_says(intake, code, DossierState.STOPPED, "refuse", note="Không đủ điều kiện")
    await wait_for_state(intake, code, secret, 8)
    response = await intake.client.post(
        f"/api/v1/dossiers/{code}/rating", params={"secret": secret}, json={"score": 2}
    )
    assert response.status_code == 201, response.text
    assert response.json()["dossier_code"] == code
    [event] = await events_of(kafka_bootstrap, intake, DOSSIER_RATED_TOPIC, code)
    assert event.score == 2 and event.comment is None
