"""Intake's HTTP routes, one module per resource: `catalogue`, `dossiers` (submission, tracking,
counter), `payments`; `problems` answers domain errors, `dependencies` are the typed
dependencies."""

from __future__ import annotations

from fastapi import APIRouter

from services.intake.api import catalogue, dossiers, payments
from services.intake.api.problems import install as install_problems

ROUTERS: list[APIRouter] = [catalogue.router, dossiers.router, payments.router]

__all__ = ["ROUTERS", "install_problems"]
