from services.intake.main import create_app
from services.intake.settings import IntakeSettings
from shared.runtime.service import run_service

run_service(create_app, IntakeSettings())  # type: ignore[arg-type]
