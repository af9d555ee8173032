from services.reporting.main import create_app
from services.reporting.settings import ReportingSettings
from shared.runtime.service import run_service

run_service(create_app, ReportingSettings())  # type: ignore[arg-type]
