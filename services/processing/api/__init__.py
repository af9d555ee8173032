"""The officer API: worklist, case detail, workflow actions (`cases.py`), result documents
(`results.py`), calendar changes (`calendar.py`) and the unit's officers (`staff.py`); bodies and
response models in `schemas.py`.

Every route needs a staff bearer token (`shared.runtime.auth`). Officers and unit heads see and act
only on their own unit's cases, administrators on any (`domain/authorisation.py`); each action is
also checked against the lifecycle. Errors are RFC 9457 problems (`dependencies.domain_problems`).
"""

from fastapi import APIRouter

from services.processing.api import calendar, cases, results, staff

routers: list[APIRouter] = [cases.router, results.router, calendar.router, staff.router]
# Routes whose request bodies may exceed the services' default limit (`max_body_bytes`).
UPLOAD_ROUTES = ("/api/v1/cases/{code}/result",)
