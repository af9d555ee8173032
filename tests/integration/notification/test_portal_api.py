"""Operators follow and resynchronise the national-portal sync over HTTP, on the running
notification service (real broker, database and portal simulator)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from services.notification.settings import NotificationSettings
from shared.contracts.cloudevents import wrap
from shared.runtime.auth import DevIssuer
from tests.factories import dossier_code, submitted
from tests.integration.notification.conftest import eventually, publish, running
from tests.integration.notification.servers import PASSWORD, USER, PortalServer


@pytest.fixture
def portal() -> Iterator[PortalServer]:
    server = PortalServer()
    server.start()
    yield server
    server.stop()


async def test_operators_see_a_dossiers_sync_and_resync_it_idempotently(
    settings: NotificationSettings,
    portal: PortalServer,
    producer: AIOKafkaProducer,
    dev_issuer: DevIssuer,
) -> None:
    settings = settings.model_copy(
        update={
            "portal_enabled": True,
            "portal_url": portal.url,
            "portal_username": USER,
            "portal_password": SecretStr(PASSWORD),
            "portal_poll_seconds": 0.1,
        }
    )
    admin = {"Authorization": f"Bearer {dev_issuer.mint('ops', ['admin'], None)}"}
    officer = {"Authorization": f"Bearer {dev_issuer.mint('o-1', ['officer'], 'G12')}"}
    code = dossier_code(61)
    async with running(settings) as (_, client):
        await publish(
            producer, settings.topic(submitted().topic), wrap(submitted(code), "/dvc/intake")
        )
        path = f"/api/v1/portal-sync/dossiers/{code}"

        async def synced() -> dict | None:
            answer = await client.get(path, headers=admin)
            body = answer.json() if answer.status_code == 200 else None
            return body if body and body["status"] == "synced" else None

        state = await eventually(synced)
        assert state["attempts"] == 0 and state["last_error"] is None
        summary = (await client.get("/api/v1/portal-sync", headers=admin)).json()
        assert summary["counts"]["synced"] == 1 and summary["share_synced"] == 1.0
        assert (await client.get(path, headers=officer)).status_code == 403
        assert (await client.get(path)).status_code == 401
        unknown = await client.get(
            f"/api/v1/portal-sync/dossiers/{dossier_code(62)}", headers=admin
        )
        assert unknown.status_code == 404

        requests_before = len(portal.requests("dossier"))
        before = dict(portal.state.dossiers)
        resynced = await client.post(f"{path}/resync", headers=admin)
        assert resynced.status_code == 200 and resynced.json() == {"outcomes": {code: "synced"}}
        assert len(portal.requests("dossier")) == requests_before + 1  # sent again...
        assert dict(portal.state.dossiers) == before  # ...and upserted: nothing changed
