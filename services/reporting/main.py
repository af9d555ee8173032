"""Composition root of the reporting service."""

from fastapi import FastAPI

from services.reporting import handlers
from services.reporting.settings import ReportingSettings
from shared.service import build_service_app


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    return build_service_app(
        settings or ReportingSettings(),
        title="Reporting (báo cáo thống kê)",
        register=handlers.register,
    )
