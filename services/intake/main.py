"""Composition root of the intake service."""

from fastapi import FastAPI

from services.intake import handlers
from services.intake.settings import IntakeSettings
from shared.service import build_service_app


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    return build_service_app(
        settings or IntakeSettings(),
        title="Intake gateway (tiếp nhận hồ sơ)",
        register=handlers.register,
    )
