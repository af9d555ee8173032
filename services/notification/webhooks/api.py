"""The webhook registry API for agencies (authenticated by their API key).

    Authorization: Bearer dvcak_...      (or X-API-Key: dvcak_...)

An agency sees and changes only its own subscriptions; any other id is answered 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.notification.webhooks.adapters.store import Document
from services.notification.webhooks.domain.errors import (
    ReplayInFuture,
    ReplayNotFound,
    SubscriptionNotFound,
    TooManySubscriptions,
    UnknownEventTypes,
)
from services.notification.webhooks.domain.subscriptions import (
    EVENT_TYPES,
    DeliveryStatus,
    Filters,
    SubscriptionStatus,
)
from services.notification.webhooks.domain.urls import UrlRefused
from services.notification.webhooks.service import WebhookService
from shared.http import Problem

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks (agencies)"])


def webhooks(request: Request) -> WebhookService:
    """The service layer `services.notification.main` put on the app (None when disabled)."""
    service: WebhookService | None = getattr(request.app.state, "webhooks", None)
    if service is None:
        raise Problem(503, "Webhook chưa bật (webhooks are not enabled)")
    return service


Service = Annotated[WebhookService, Depends(webhooks)]


async def current_agency(
    service: Service,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Document:
    key = x_api_key
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    challenge = {"WWW-Authenticate": 'Bearer realm="dvc-webhooks"'}
    if not key:
        raise Problem(401, "Thiếu khóa API (missing API key)", headers=challenge)
    agency = await service.agency_for_key(key)
    if agency is None:
        raise Problem(401, "Khóa API không hợp lệ (invalid API key)", headers=challenge)
    return agency


Agency = Annotated[Document, Depends(current_agency)]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, examples=["https://example.gov.vn/dvc/webhooks"])
    filters: Filters = Field(default_factory=Filters)
    description: str | None = Field(default=None, max_length=300)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048)
    filters: Filters | None = None
    description: str | None = Field(default=None, max_length=300)
    enabled: bool | None = Field(default=None, description="false: stop receiving events")


class SubscriptionOut(BaseModel):
    id: str
    url: str
    filters: Filters
    status: SubscriptionStatus
    description: str | None = None
    created_at: datetime
    updated_at: datetime | None = None
    paused_at: datetime | None = None
    pause_reason: str | None = None


class SubscriptionWithSecret(SubscriptionOut):
    secret: str = Field(description="Signing secret (whsec_...), shown only here: keep it safe")


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    dossier_code: str
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    replayed_at: datetime | None = None


class RedriveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime | None = Field(default=None, description="Only failures created since")


class RedriveOut(BaseModel):
    redriven: int


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="Replay every public event published since then")


class ReplayOut(BaseModel):
    id: str
    subscription_id: str
    since: datetime
    status: str
    enqueued: int
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


def _subscription_out(document: Document, model: type[SubscriptionOut] = SubscriptionOut) -> Any:
    return model.model_validate({**document, "id": document["_id"]})


@contextmanager
def _problems() -> Iterator[None]:
    """The registry's refusals as RFC 9457 problems."""
    try:
        yield
    except SubscriptionNotFound:
        raise Problem(404, "Không tìm thấy đăng ký (subscription not found)") from None
    except TooManySubscriptions:
        raise Problem(409, "Quá số đăng ký cho phép (too many subscriptions)") from None
    except UrlRefused as exc:
        raise Problem(
            422, "Địa chỉ nhận không được phép (subscriber URL not allowed)", str(exc)
        ) from exc
    except UnknownEventTypes as exc:
        raise Problem(
            422,
            "Loại sự kiện không hợp lệ (unknown event types)",
            f"unknown: {', '.join(exc.unknown)}; known: {', '.join(EVENT_TYPES)}",
        ) from None
    except ReplayInFuture:
        raise Problem(422, "Thời điểm phải ở quá khứ (since must be in the past)") from None
    except ReplayNotFound:
        raise Problem(404, "Không tìm thấy lượt phát lại (replay not found)") from None


@router.post("/subscriptions", status_code=201, response_model=SubscriptionWithSecret)
async def create_subscription(body: SubscriptionIn, service: Service, agency: Agency) -> Any:
    """Subscribe a URL to the public dossier-status events that match the filters."""
    with _problems():
        document, secret = await service.create_subscription(
            agency, url=body.url, filters=body.filters, description=body.description
        )
    return _subscription_out({**document, "secret": secret}, SubscriptionWithSecret)


@router.get("/subscriptions", response_model=list[SubscriptionOut])
async def list_subscriptions(service: Service, agency: Agency) -> Any:
    return [_subscription_out(d) for d in await service.subscriptions_of(agency)]


@router.get("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
async def get_subscription(subscription_id: str, service: Service, agency: Agency) -> Any:
    with _problems():
        return _subscription_out(await service.own_subscription(agency, subscription_id))


@router.patch("/subscriptions/{subscription_id}", response_model=SubscriptionOut)
async def update_subscription(
    subscription_id: str, body: SubscriptionPatch, service: Service, agency: Agency
) -> Any:
    with _problems():
        document = await service.update_subscription(
            agency,
            subscription_id,
            url=body.url,
            filters=body.filters,
            description=body.description,
            enabled=body.enabled,
        )
    return _subscription_out(document)


@router.delete("/subscriptions/{subscription_id}", status_code=204)
async def delete_subscription(subscription_id: str, service: Service, agency: Agency) -> Response:
    with _problems():
        await service.delete_subscription(agency, subscription_id)
    return Response(status_code=204)


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret", response_model=SubscriptionWithSecret
)
async def rotate_secret(subscription_id: str, service: Service, agency: Agency) -> Any:
    """A new signing secret, in force at once (the old one stops working)."""
    with _problems():
        document, secret = await service.rotate_secret(agency, subscription_id)
    return _subscription_out({**document, "secret": secret}, SubscriptionWithSecret)


@router.post("/subscriptions/{subscription_id}/resume", response_model=SubscriptionOut)
async def resume_subscription(subscription_id: str, service: Service, agency: Agency) -> Any:
    """Resume a subscription paused by its circuit breaker (after fixing the receiver)."""
    with _problems():
        return _subscription_out(await service.resume(agency, subscription_id))


@router.get("/subscriptions/{subscription_id}/deliveries", response_model=list[DeliveryOut])
async def delivery_log(
    subscription_id: str,
    service: Service,
    agency: Agency,
    status: DeliveryStatus | None = None,
    since: Annotated[AwareDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The delivery log, newest first: metadata only (no payload)."""
    with _problems():
        documents = await service.delivery_log(
            agency, subscription_id, status=status, since=since, limit=limit
        )
    return [DeliveryOut.model_validate({**d, "id": d["_id"]}) for d in documents]


@router.post("/subscriptions/{subscription_id}/redrive", status_code=202, response_model=RedriveOut)
async def redrive(
    subscription_id: str, service: Service, agency: Agency, body: RedriveIn | None = None
) -> Any:
    """Attempt the failed deliveries again (a fresh round of retries), in their order."""
    with _problems():
        count = await service.redrive(agency, subscription_id, body.since if body else None)
    return RedriveOut(redriven=count)


@router.post("/subscriptions/{subscription_id}/replay", status_code=202, response_model=ReplayOut)
async def start_replay(
    subscription_id: str, body: ReplayIn, service: Service, agency: Agency
) -> Any:
    """Deliver again every matching public event since a moment (after a long outage)."""
    with _problems():
        job = await service.start_replay(agency, subscription_id, body.since)
    return ReplayOut.model_validate({**job, "id": job["_id"]})


@router.get("/subscriptions/{subscription_id}/replays/{replay_id}", response_model=ReplayOut)
async def get_replay(subscription_id: str, replay_id: str, service: Service, agency: Agency) -> Any:
    with _problems():
        job = await service.replay_job(agency, subscription_id, replay_id)
    return ReplayOut.model_validate({**job, "id": job["_id"]})
