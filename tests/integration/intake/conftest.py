from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.intake.main import IntakeComponents, create_app
from services.intake.settings import IntakeSettings
from shared.runtime.auth import DevIssuer
from tests.service_harness import QUICK_CONSUMERS, create_suffixed_topics, serve


@dataclass
class Intake:
    client: httpx.AsyncClient
    components: IntakeComponents
    settings: IntakeSettings
    issuer: DevIssuer

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def token(self, *roles: str, unit: str | None = None) -> dict[str, str]:
        token = self.issuer.mint("staff-1", list(roles), unit, name="Cán bộ một cửa")
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def intake(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Intake]:
    token = uuid.uuid4().hex[:10]
    issuer = DevIssuer(Path(tmp_path_factory.mktemp("issuer")))
    settings = IntakeSettings(
        environment="test",
        kafka_bootstrap=kafka_bootstrap,
        mongo_url=mongo_url,
        mongo_database=f"test_intake_{token}",
        topic_suffix=f".{token}",
        relay_poll_seconds=0.2,
        submissions_per_minute=100_000,
        tracking_per_minute=100_000,
        wrong_secrets_allowed=5,
        jwt_public_key_file=str(issuer.public_key_path),
        max_file_bytes=200_000,
        max_dossier_bytes=400_000,
        public_base_url="https://dichvucong.most.gov.vn",
        processing_token="test-token",
        # Tests run recovery passes themselves (the start-up pass still runs).
        payment_recovery_seconds=3600,
        **QUICK_CONSUMERS,
    )
    await create_suffixed_topics(kafka_bootstrap, settings.topic_suffix)
    app = create_app(settings)
    async with serve(app) as client:
        yield Intake(client, app.state.intake, settings, issuer)
    from pymongo import MongoClient

    with MongoClient(mongo_url) as mongo:
        mongo.drop_database(settings.mongo_database)
