from services.processing.main import create_app
from services.processing.settings import ProcessingSettings
from shared.runtime.service import run_service

run_service(create_app, ProcessingSettings())  # type: ignore[arg-type]
