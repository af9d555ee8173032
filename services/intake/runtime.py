"""What intake's routes and handlers share, built once in `main.py`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.intake.adapters import ResultDocuments
from services.intake.catalogue_publisher import CataloguePublisher
from services.intake.domain.payments import PaymentProvider
from services.intake.protection import RateLimits
from services.intake.settings import IntakeSettings
from services.intake.settlement import PaymentSettler
from services.intake.store import IntakeStore
from shared.outbox import OutboxRelay
from shared.service import ServiceContext

SOURCE = "/dvc/intake"


@dataclass
class IntakeRuntime:
    settings: IntakeSettings
    context: ServiceContext
    store: IntakeStore
    limits: RateLimits
    dossier_relay: OutboxRelay
    catalogue: CataloguePublisher
    payment_provider: PaymentProvider
    payments: PaymentSettler
    result_documents: ResultDocuments

    def topic(self, name: str) -> str:
        return self.settings.topic(name)


def get_runtime(request: Request) -> IntakeRuntime:
    return request.app.state.intake


Runtime = Annotated[IntakeRuntime, Depends(get_runtime)]
