"""Composition root of the processing service."""

from fastapi import FastAPI

from services.processing import handlers
from services.processing.settings import ProcessingSettings
from shared.service import build_service_app


def create_app(settings: ProcessingSettings | None = None) -> FastAPI:
    return build_service_app(
        settings or ProcessingSettings(),
        title="Processing (xử lý hồ sơ)",
        register=handlers.register,
    )
