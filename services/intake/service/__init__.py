"""Intake's service layer: the use cases, calling the domain rules and the adapters.

- `submission`: online submissions and dossiers recorded at the counter;
- `dossiers`: what is done with a submitted dossier (tracking, receipt, withdrawal, supplement,
  result);
- `payments`: starting a payment, taking the provider's callback; `settlement` completes it;
- `catalogue`: the procedure catalogue;
- `status`: the status view and inbox fed by other services' events.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.intake.service.catalogue import Catalogue
from services.intake.service.dossiers import DossierActions
from services.intake.service.payments import Payments
from services.intake.service.settlement import PaymentSettler
from services.intake.service.status import StatusView
from services.intake.service.submission import Submissions
from services.intake.settings import IntakeSettings

# The CloudEvents `source` of everything intake publishes.
SOURCE = "/dvc/intake"


@dataclass(frozen=True)
class IntakeService:
    """Every use case of intake, built once by `services.intake.main`."""

    settings: IntakeSettings
    submissions: Submissions
    dossiers: DossierActions
    payments: Payments
    settlement: PaymentSettler
    catalogue: Catalogue
    status: StatusView
