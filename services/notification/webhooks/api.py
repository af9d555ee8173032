"""The webhook registry API for agencies (authenticated by their API key).

    Authorization: Bearer dvcak_...      (or X-API-Key: dvcak_...)

An agency sees and changes only its own subscriptions; any other id is answered 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from services.notification.webhooks.adapters.store import Document
from services.notification.webhooks.domain.errors import (
    ReplayInFuture,
    ReplayNotFound,
    SecretUnreadable,
    SubscriptionNotFound,
    TooManyReplays,
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
from shared.runtime.http import (
    Problem,
    StrictAwareDatetime,
    UnixEraDatetime,
    problems,
)

router = APIRouter(
    prefix="/api/v1/webhooks",
    tags=["webhooks (agencies)"],
    responses=problems(401, 503, notes={503: "Or webhooks are not enabled"}),
)
# The agency's API key, as a bearer token or in `X-API-Key` (either one).
_bearer_key = HTTPBearer(
    auto_error=False, scheme_name="AgencyApiKeyBearer", description="The agency's API key"
)
_header_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="AgencyApiKey", description="The same key"
)


async def webhooks(request: Request) -> WebhookService:
    """The service layer `services.notification.main` put on the app (None when disabled)."""
    service: WebhookService | None = getattr(request.app.state, "webhooks", None)
    if service is None:
        raise Problem(503, "Webhook chưa bật (webhooks are not enabled)")
    return service


Service = Annotated[WebhookService, Depends(webhooks)]


async def current_agency(
    service: Service,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_key)],
    x_api_key: Annotated[str | None, Depends(_header_key)],
) -> Document:
    key = x_api_key
    if key is None and bearer is not None:
        key = bearer.credentials.strip()
    challenge = {"WWW-Authenticate": 'Bearer realm="dvc-webhooks"'}
    if not key:
        raise Problem(401, "Thiếu khóa API (missing API key)", headers=challenge)
    agency = await service.agency_for_key(key)
    if agency is None:
        raise Problem(401, "Khóa API không hợp lệ (invalid API key)", headers=challenge)
    return agency


Agency = Annotated[Document, Depends(current_agency)]


URL_RULE = (
    "The receiver: `https` on port 443 (outside production also on port 80) at a public "
    "address; private, loopback, link-local and reserved addresses, and IPv6 forms carrying "
    "them (IPv4-mapped, 6to4, NAT64; Teredo), are refused (422). Plain `http` only where "
    "`WEBHOOK_ALLOW_PRIVATE_URLS` is set (development)"
)
Url = Annotated[
    str,
    Field(
        max_length=2048,
        # Documented, and enforced by the URL check itself (whose refusal says why).
        json_schema_extra={"format": "uri", "pattern": "^[hH][tT][tT][pP][sS]?://"},
        description=URL_RULE,
        examples=["https://example.gov.vn/dvc/webhooks"],
    ),
]


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    filters: Filters = Field(default_factory=Filters)
    description: str | None = Field(default=None, max_length=300)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
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

    since: StrictAwareDatetime | None = Field(
        default=None, description="Only failures created since"
    )


class RedriveOut(BaseModel):
    redriven: int


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: UnixEraDatetime = Field(
        description="Replay every public event published since then: a moment in the past, "
        "1970-01-01T00:00:00Z or later"
    )


REPLAY_FAILED = (
    "Phát lại không hoàn tất; vui lòng thử lại hoặc liên hệ bộ phận vận hành "
    "(the replay did not finish: start it again, or contact the platform's operators)"
)


class ReplayOut(BaseModel):
    id: str
    subscription_id: str
    since: datetime
    status: str
    enqueued: int
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = Field(
        default=None, description="Set when the replay failed (the cause is in the service's log)"
    )

    @classmethod
    def of(cls, job: Document) -> ReplayOut:
        """The job as shown to the agency: never the internal cause of a failure."""
        error = REPLAY_FAILED if job.get("error") else None
        return cls.model_validate({**job, "id": job["_id"], "error": error})


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
    except TooManyReplays as exc:
        raise Problem(
            429,
            "Quá số lượt phát lại đang chạy (too many replays running)",
            f"{exc}; try again when one has finished",
            headers={"Retry-After": "60"},
        ) from None
    except SecretUnreadable:
        raise Problem(
            409,
            "Không đọc được khóa ký (signing secret unreadable)",
            "rotate the signing secret (POST .../rotate-secret): the subscription resumes with it",
        ) from None


NOT_FOUND = {404: "No subscription with this id among the agency's own"}


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionWithSecret,
    responses=problems(
        400,
        409,
        413,
        422,
        notes={
            409: "The agency has as many subscriptions as allowed",
            422: "Or the URL is refused (see `url`), or an event type is unknown",
        },
    ),
)
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


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    responses=problems(404, 422, notes=NOT_FOUND),
)
async def get_subscription(subscription_id: str, service: Service, agency: Agency) -> Any:
    with _problems():
        return _subscription_out(await service.own_subscription(agency, subscription_id))


@router.patch(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    responses=problems(
        400,
        404,
        413,
        422,
        notes={**NOT_FOUND, 422: "Or the URL is refused (see `url`), or an event type is unknown"},
    ),
)
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


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    response_class=Response,
    responses=problems(404, 422, notes=NOT_FOUND),
)
async def delete_subscription(subscription_id: str, service: Service, agency: Agency) -> Response:
    with _problems():
        await service.delete_subscription(agency, subscription_id)
    return Response(status_code=204)


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret",
    response_model=SubscriptionWithSecret,
    responses=problems(404, 422, notes=NOT_FOUND),
)
async def rotate_secret(subscription_id: str, service: Service, agency: Agency) -> Any:
    """A new signing secret, in force at once (the old one stops working)."""
    with _problems():
        document, secret = await service.rotate_secret(agency, subscription_id)
    return _subscription_out({**document, "secret": secret}, SubscriptionWithSecret)


@router.post(
    "/subscriptions/{subscription_id}/resume",
    response_model=SubscriptionOut,
    responses=problems(404, 422, notes=NOT_FOUND),
)
async def resume_subscription(subscription_id: str, service: Service, agency: Agency) -> Any:
    """Resume a subscription paused by its circuit breaker (after fixing the receiver)."""
    with _problems():
        return _subscription_out(await service.resume(agency, subscription_id))


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    response_model=list[DeliveryOut],
    responses=problems(404, 422, notes=NOT_FOUND),
)
async def delivery_log(
    subscription_id: str,
    service: Service,
    agency: Agency,
    status: DeliveryStatus | None = None,
    since: Annotated[StrictAwareDatetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The delivery log, newest first: metadata only (no payload)."""
    with _problems():
        documents = await service.delivery_log(
            agency, subscription_id, status=status, since=since, limit=limit
        )
    return [DeliveryOut.model_validate({**d, "id": d["_id"]}) for d in documents]


@router.post(
    "/subscriptions/{subscription_id}/redrive",
    status_code=202,
    response_model=RedriveOut,
    responses=problems(400, 404, 413, 422, notes=NOT_FOUND),
)
async def redrive(
    subscription_id: str, service: Service, agency: Agency, body: RedriveIn | None = None
) -> Any:
    """Attempt the failed deliveries again (a fresh round of retries), in their order."""
    with _problems():
        count = await service.redrive(agency, subscription_id, body.since if body else None)
    return RedriveOut(redriven=count)


@router.post(
    "/subscriptions/{subscription_id}/replay",
    status_code=202,
    response_model=ReplayOut,
    responses=problems(
        400,
        404,
        413,
        422,
        429,
        notes={
            **NOT_FOUND,
            422: "Or `since` is in the future or before 1970",
            429: "Too many replays of the agency are running",
        },
    ),
)
async def start_replay(
    subscription_id: str, body: ReplayIn, service: Service, agency: Agency
) -> Any:
    """Deliver again every matching public event since a moment (after a long outage): `since`
    is in the past and not before 1970-01-01T00:00:00Z (422 otherwise). The replay runs in the
    background: follow it at `GET .../replays/{replay_id}`."""
    with _problems():
        job = await service.start_replay(agency, subscription_id, body.since)
    return ReplayOut.of(job)


@router.get(
    "/subscriptions/{subscription_id}/replays/{replay_id}",
    response_model=ReplayOut,
    responses=problems(
        404, 422, notes={404: "No such subscription of the agency, or no such replay of it"}
    ),
)
async def get_replay(subscription_id: str, replay_id: str, service: Service, agency: Agency) -> Any:
    with _problems():
        job = await service.replay_job(agency, subscription_id, replay_id)
    return ReplayOut.of(job)
