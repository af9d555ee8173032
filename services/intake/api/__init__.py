"""Intake's HTTP routes, one module per resource: `catalogue`, `dossiers` (submission, tracking,
counter), `payments`; `problems` answers domain errors, `dependencies` are the typed
dependencies."""

from __future__ import annotations

from fastapi import APIRouter

from services.intake.api import catalogue, dossiers, payments
from services.intake.api.problems import install as install_problems

ROUTERS: list[APIRouter] = [catalogue.router, dossiers.router, payments.router]
# The routes that take files: their bodies may reach the dossier limit, the others' may not.
UPLOAD_ROUTES = (
    "/api/v1/dossiers",
    "/api/v1/counter/dossiers",
    "/api/v1/dossiers/{code}/supplements",
)

__all__ = ["ROUTERS", "UPLOAD_ROUTES", "install_problems"]
