"""The four services' OpenAPI documents, built from apps that are created but not started."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI

SERVICES = ("intake", "processing", "notification", "reporting")


def create(service: str, public_key_file: Path, **overrides: Any) -> FastAPI:
    """`service`'s app with test settings (`overrides` on top); nothing connects until started."""
    common: dict[str, Any] = {"environment": "test", "jwt_public_key_file": str(public_key_file)}
    if service == "intake":
        from services.intake.main import create_app as create_intake
        from services.intake.settings import IntakeSettings

        return create_intake(IntakeSettings(**{"processing_token": "test", **common, **overrides}))
    if service == "processing":
        from services.processing.main import create_app as create_processing
        from services.processing.settings import ProcessingSettings

        return create_processing(ProcessingSettings(**common, **overrides))
    if service == "notification":
        from services.notification.main import create_app as create_notification
        from services.notification.settings import NotificationSettings

        return create_notification(NotificationSettings(**common, **overrides))
    if service == "reporting":
        from services.reporting.main import create_app as create_reporting
        from services.reporting.settings import ReportingSettings

        return create_reporting(ReportingSettings(**common, **overrides))
    raise ValueError(service)


@cache
def document(service: str) -> dict[str, Any]:
    import tempfile

    from shared.runtime.auth import DevIssuer

    with tempfile.TemporaryDirectory() as directory:
        issuer = DevIssuer(Path(directory))
        return create(service, issuer.public_key_path).openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation of the document."""
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "patch", "delete"}
    ]
