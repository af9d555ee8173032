"""The demo data when the services trust only the OpenID Connect provider (devstack's Keycloak,
test profile): the development issuer's tokens are refused, so the simulated staff are the realm's
demo users (the unit's own, else the administrator)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from devstack.demo import run_demo
from shared.runtime.auth import DevIssuer
from tests.portal.workspace.stack import keycloak_issuer, running_workspace

pytestmark = [pytest.mark.infra, pytest.mark.keycloak, pytest.mark.timeout(900)]


async def test_the_demo_signs_staff_in_at_the_provider(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    issuer = await asyncio.to_thread(keycloak_issuer)
    async with running_workspace(kafka_bootstrap, mongo_url, tmp_path, issuer) as stack:
        said: list[str] = []
        result = await run_demo(
            stack.intake_url,
            stack.processing_url,
            count=10,
            issuer=DevIssuer(tmp_path / "issuer"),  # not trusted by these services
            provider_url=issuer,
            seed=11,
            progress=said.append,
        )
        assert any("the realm's demo users" in line for line in said), said
        assert not result.failures, result.failures
        assert len(result.states()) >= 3, result.states()
        token = await stack.token("quantri")
        async with httpx.AsyncClient(timeout=30) as client:
            for dossier in result.dossiers:
                case = await client.get(
                    f"{stack.processing_url}/api/v1/cases/{dossier['code']}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert case.json()["state"] == dossier["state"]
